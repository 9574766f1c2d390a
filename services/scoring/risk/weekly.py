"""Weekly feature snapshots as live scoring takes them: when, and in what form they are stored. Pure.

A snapshot falls on a fixed grid of event time, every `every` seconds from a Monday 00:00 UTC
(the grid does not depend on when an account started or on the wall clock), so live scoring
and a replay take the same snapshots at the same moments. What is stored is everything
`features.snapshot` read, fixed features by name and the per-event-name counters, so the event
names that become columns are chosen when a model is fitted, not when the snapshot was taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.scoring.model import DAY
from services.scoring.risk.features import FEATURES_VERSION, FIXED, Snapshot

WEEK = 7 * DAY
GRID_ORIGIN = 4 * DAY  # 1970-01-05, a Monday


def next_moment(after: float, every: float) -> float:
    """The first grid moment strictly after `after`."""
    steps = (after - GRID_ORIGIN) // every + 1
    return GRID_ORIGIN + steps * every


@dataclass(frozen=True)
class TakenSnapshot:
    """One account's features at one grid moment, with what the baselines said then."""

    snapshot: Snapshot
    scorecard_score: float | None  # the shown health score then (100 healthy), None if none yet
    activity_28d: float  # the 28-day decayed count of all usage: the naive baseline

    @property
    def at(self) -> float:
        return self.snapshot.at

    def features_json(self) -> dict[str, Any]:
        return {
            "fixed": dict(zip(FIXED, self.snapshot.fixed, strict=True)),
            "events": dict(sorted(self.snapshot.by_name.items())),
            "events_long": dict(sorted(self.snapshot.by_name_long.items())),
        }


class SchemaMismatch(ValueError):
    """Stored features of another feature version than this code computes."""


def from_stored(at: float, version: int, features: dict[str, Any]) -> Snapshot:
    if version != FEATURES_VERSION:
        raise SchemaMismatch(
            f"snapshot features version {version}, this code reads version {FEATURES_VERSION}: "
            "replay (`churnwatch replay --all`) to rewrite the snapshots"
        )
    fixed = features["fixed"]
    missing = [name for name in FIXED if name not in fixed]
    if missing:
        raise SchemaMismatch(f"snapshot lacks fixed features {missing}")
    return Snapshot(at, tuple(float(fixed[name]) for name in FIXED),
                    {str(k): float(v) for k, v in features["events"].items()},
                    {str(k): float(v) for k, v in features.get("events_long", {}).items()})
