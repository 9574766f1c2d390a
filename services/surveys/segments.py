"""An account's segment, from its `group` traits (shared/account_facts.py). Pure.

Three dimensions, used both to pick a survey's audience and to break insight down:
- plan: the `plan` trait as sent (trimmed);
- lifecycle_stage: onboarding | adoption | expansion | renewal;
- arr_tier: named ARR bands from CHURNWATCH_SURVEY_ARR_TIERS
  (`name:lower_bound,...`, e.g. `low_touch:0,mid_touch:25000,high_touch:100000`).
A dimension the traits do not tell is None ("unknown"), never a default segment.

Surveys computes segments from the traits it consumes itself rather than from scoring's
`HealthScorePayload.segment`: a survey audience must be known for accounts scoring has not
scored yet, and the three named dimensions can be combined freely in an audience.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.account_facts import AccountFacts


class Dimension(StrEnum):
    PLAN = "plan"
    LIFECYCLE_STAGE = "lifecycle_stage"
    ARR_TIER = "arr_tier"


@dataclass(frozen=True)
class ArrTier:
    name: str
    lower_bound: float


def parse_arr_tiers(setting: str) -> list[ArrTier]:
    """`name:lower_bound,...` as tiers in ascending order; ValueError naming what is wrong."""
    tiers: list[ArrTier] = []
    for part in (p.strip() for p in setting.split(",")):
        if not part:
            continue
        name, colon, bound = part.partition(":")
        name = name.strip()
        if not colon or not name:
            raise ValueError(f"CHURNWATCH_SURVEY_ARR_TIERS: {part!r} is not name:lower_bound")
        try:
            value = float(bound)
        except ValueError as exc:
            raise ValueError(f"CHURNWATCH_SURVEY_ARR_TIERS: {bound.strip()!r} is not a number") from exc
        tiers.append(ArrTier(name, value))
    tiers.sort(key=lambda t: t.lower_bound)
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError("CHURNWATCH_SURVEY_ARR_TIERS: tier names must be unique")
    if not tiers:
        raise ValueError("CHURNWATCH_SURVEY_ARR_TIERS: at least one tier is needed")
    return tiers


def arr_tier(arr: float | None, tiers: list[ArrTier]) -> str | None:
    if arr is None:
        return None
    found = [t.name for t in tiers if arr >= t.lower_bound]
    return found[-1] if found else None


@dataclass(frozen=True)
class Segment:
    plan: str | None
    lifecycle_stage: str | None
    arr_tier: str | None

    def value(self, dimension: Dimension) -> str | None:
        return {Dimension.PLAN: self.plan, Dimension.LIFECYCLE_STAGE: self.lifecycle_stage,
                Dimension.ARR_TIER: self.arr_tier}[dimension]


def segment_of(traits: Mapping[str, Any], tiers: list[ArrTier]) -> Segment:
    facts = AccountFacts.from_traits(traits)
    return Segment(
        plan=facts.plan,
        lifecycle_stage=facts.lifecycle_stage.value if facts.lifecycle_stage else None,
        arr_tier=arr_tier(facts.arr, tiers),
    )
