"""The scorecard: which measures, how they are weighed, bands, segments and signal thresholds.

Read from YAML (`CHURNWATCH_SCORING_SCORECARD_PATH`, default: the file shipped in
`services/scoring/scorecards/default.yaml`) and validated once at start. Every model forbids
unknown keys, so a typo (`wieght`) is an error naming its place in the file
(`segments[1].measures.recency.wieght`), never a silently ignored line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.scoring.signal_types import SIGNAL_TYPES
from shared.account_facts import LifecycleStage

DEFAULT_SCORECARD = Path(__file__).parent / "scorecards" / "default.yaml"

Weight = Annotated[float, Field(gt=0, le=1000, description="relative; renormalised to 100%")]
Days = Annotated[float, Field(gt=0, le=3650)]
Ratio = Annotated[float, Field(gt=0, le=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- measures -------------------------------------------------------------------------------


class UsageTrend(_Strict):
    """Usage volume over about a week against the account's own baseline of about a month."""

    weight: Weight
    min_history_days: Days = 14.0


class ActiveUsers(_Strict):
    """Users active in the last `window_days` against licensed seats."""

    weight: Weight
    window_days: Days = 7.0
    healthy_share: Annotated[float, Field(gt=0, le=1)] = 0.6
    # A weekly count needs a week of observation: younger accounts are left out, not judged.
    min_history_days: Days = 7.0


class FeatureBreadth(_Strict):
    """Key features (the scorecard's `key_features`) used within `window_days`."""

    weight: Weight
    window_days: Days = 30.0
    # Without `key_features`: distinct tracked event names, against this many.
    target_features: Annotated[int, Field(ge=1, le=100)] = 5
    min_history_days: Days = 14.0


class Recency(_Strict):
    weight: Weight
    full_days: Days = 2.0
    zero_days: Days = 30.0

    @model_validator(mode="after")
    def _ordered(self) -> Recency:
        if self.zero_days <= self.full_days:
            raise ValueError("zero_days must be greater than full_days")
        return self


class PeerUsage(_Strict):
    """Product usage level against the segment's peers on the account's partition (a percentile)."""

    weight: Weight
    # At this percentile of the peers or above the measure is 100; below it falls linearly to 0.
    healthy_percentile: Annotated[float, Field(gt=0, le=1)] = 1.0
    # Fewer peers than this (a new installation's first days): left out, not judged.
    min_peers: Annotated[int, Field(ge=1, le=10_000)] = 10


class OpenTickets(_Strict):
    """Open tickets, their severity and their age."""

    weight: Weight
    points_per_open: Annotated[float, Field(ge=0, le=100)] = 15.0
    points_per_severe: Annotated[float, Field(ge=0, le=100)] = 35.0
    points_per_aged: Annotated[float, Field(ge=0, le=100)] = 10.0
    aged_after_days: Days = 7.0


class TicketRate(_Strict):
    """Tickets opened recently against the account's own baseline."""

    weight: Weight
    min_history_days: Days = 28.0
    zero_at_ratio: Annotated[float, Field(gt=1, le=100)] = 3.0


class Nps(_Strict):
    weight: Weight
    trend_points: Annotated[float, Field(ge=0, le=100)] = (
        10.0  # taken off when the latest fell vs the one before
    )


class Csat(_Strict):
    weight: Weight


class Ces(_Strict):
    weight: Weight


class Payment(_Strict):
    weight: Weight
    failed_value: Annotated[float, Field(ge=0, le=100)] = 20.0
    past_due_value: Annotated[float, Field(ge=0, le=100)] = 0.0


class Renewal(_Strict):
    """Days to renewal: no pressure beyond `horizon_days`, then falling towards the date."""

    weight: Weight
    horizon_days: Days = 90.0
    value_at_date: Annotated[float, Field(ge=0, le=100)] = 40.0


class Onboarding(_Strict):
    """Time to first value: a milestone event (the scorecard's `milestones`) by `target_days`."""

    weight: Weight
    target_days: Days = 30.0
    late_value: Annotated[float, Field(ge=0, le=100)] = 70.0  # reached, but after the target


class Measures(_Strict):
    usage_trend: UsageTrend | None = None
    active_users: ActiveUsers | None = None
    feature_breadth: FeatureBreadth | None = None
    recency: Recency | None = None
    peer_usage: PeerUsage | None = None
    open_tickets: OpenTickets | None = None
    ticket_rate: TicketRate | None = None
    nps: Nps | None = None
    csat: Csat | None = None
    ces: Ces | None = None
    payment: Payment | None = None
    renewal: Renewal | None = None
    onboarding: Onboarding | None = None

    def enabled(self) -> list[tuple[str, Any]]:
        return [
            (name, getattr(self, name)) for name in type(self).model_fields if getattr(self, name) is not None
        ]

    @model_validator(mode="after")
    def _at_least_one(self) -> Measures:
        if not self.enabled():
            raise ValueError("a segment needs at least one measure")
        return self


# --- segments -------------------------------------------------------------------------------


class SegmentRule(_Strict):
    """All given conditions must hold; an empty rule matches every account."""

    plans: list[str] | None = Field(default=None, description="plan trait, case-insensitive")
    lifecycle_stages: list[LifecycleStage] | None = None
    min_arr: Annotated[float, Field(ge=0)] | None = None
    max_arr: Annotated[float, Field(ge=0)] | None = None


class Segment(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    when: SegmentRule = SegmentRule()
    measures: Measures


class Bands(_Strict):
    red_below: Annotated[float, Field(gt=0, lt=100)] = 40.0
    green_from: Annotated[float, Field(gt=0, le=100)] = 70.0
    # Worsening takes effect at the threshold; improving needs the score this far past it.
    hysteresis: Annotated[float, Field(ge=0, le=20)] = 3.0

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.green_from <= self.red_below:
            raise ValueError("green_from must be greater than red_below")
        return self


# --- signals ---------------------------------------------------------------------------------


class ScoreDrop(_Strict):
    points: Annotated[float, Field(gt=0, le=100)] = 15.0
    within_days: Days = 14.0
    recovered_within: Annotated[float, Field(ge=0, le=100)] = 5.0  # cleared this close to the peak


class UsageDecline(_Strict):
    below_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.6
    recover_ratio: Annotated[float, Field(gt=0, le=1)] = 0.8


class TicketSpike(_Strict):
    ratio: Annotated[float, Field(gt=1, le=100)] = 2.0
    recover_ratio: Annotated[float, Field(gt=0, le=100)] = 1.5
    min_recent_tickets: Annotated[float, Field(ge=0)] = 3.0


class HighSeverityTicket(_Strict):
    priorities: list[Literal["low", "normal", "high", "urgent"]] = ["urgent"]
    tags: list[str] = ["escalated", "escalation"]


class SurveyResponseRule(_Strict):
    nps_max: int = Field(default=6, ge=0, le=10)
    csat_max: int = Field(default=2, ge=1, le=5)
    ces_max: int = Field(default=2, ge=1, le=7)
    expires_after_days: Days = 90.0


class PromoterRule(_Strict):
    nps_min: int = Field(default=9, ge=0, le=10)
    expires_after_days: Days = 90.0


class ChampionChange(_Strict):
    inactive_days: Days = 14.0


class CompetitorMentioned(_Strict):
    expires_after_days: Days = 30.0


class RenewalAtRisk(_Strict):
    within_days: Days = 90.0


class OnboardingBehind(_Strict):
    day: Days = 30.0


class NearlyFull(_Strict):
    ratio: Annotated[float, Field(gt=0, le=10)] = 0.9
    recover_ratio: Annotated[float, Field(gt=0, le=10)] = 0.8


class Signals(_Strict):
    score_drop: ScoreDrop = ScoreDrop()
    usage_decline: UsageDecline = UsageDecline()
    ticket_spike: TicketSpike = TicketSpike()
    high_severity_ticket: HighSeverityTicket = HighSeverityTicket()
    detractor_response: SurveyResponseRule = SurveyResponseRule()
    promoter_response: PromoterRule = PromoterRule()
    champion_change: ChampionChange = ChampionChange()
    competitor_mentioned: CompetitorMentioned = CompetitorMentioned()
    renewal_at_risk: RenewalAtRisk = RenewalAtRisk()
    onboarding_behind: OnboardingBehind = OnboardingBehind()
    seats_nearly_full: NearlyFull = NearlyFull()
    usage_near_plan_limit: NearlyFull = NearlyFull()
    # Signal types not to emit at all (e.g. while a team is not ready to act on them).
    disabled: list[str] = []


class Scorecard(_Strict):
    version: Annotated[str, Field(min_length=1, max_length=60)] = "1"
    bands: Bands = Bands()
    segments: Annotated[list[Segment], Field(min_length=1)]
    # Tracked event names (case-insensitive) that count as reaching first value.
    milestones: list[str] = []
    key_features: list[str] = []
    competitors: list[Annotated[str, Field(min_length=2, max_length=80)]] = []
    # A history row (and a health-score event) is written when the score moved at least this
    # much since the last one, or the band or the top factor changed.
    history_min_change: Annotated[float, Field(ge=0, le=100)] = 1.0
    # Product usage re-scores an account at most once per this many seconds of its event
    # time (every other event, and every tick, re-scores at once): re-scoring on each of a
    # burst of clicks costs CPU and changes nothing a CSM could see.
    usage_evaluation_seconds: Annotated[float, Field(ge=0, le=3_600)] = 60.0
    signals: Signals = Signals()

    @model_validator(mode="after")
    def _segments(self) -> Scorecard:
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique: {names}")
        last = self.segments[-1].when
        if last != SegmentRule():
            raise ValueError("the last segment must have no `when` rule: it catches every other account")
        unknown = sorted(set(self.signals.disabled) - set(SIGNAL_TYPES))
        if unknown:
            raise ValueError(f"signals.disabled names unknown signal types {unknown}")
        return self

    def segment_named(self, name: str) -> Segment:
        by_name = _SEGMENTS.get(id(self))
        if by_name is None or by_name[1] is not self:
            by_name = _SEGMENTS[id(self)] = ({s.name: s for s in self.segments}, self)
        return by_name[0].get(name, self.segments[-1])


# Segments by name per scorecard (scorecards are immutable; the entry keeps its card alive).
_SEGMENTS: dict[int, tuple[dict[str, Segment], Scorecard]] = {}


class ScorecardError(ValueError):
    """The scorecard file is unreadable or invalid; the message names the file and each bad field."""


def _where(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def parse_scorecard(text: str, source: str = "<scorecard>") -> Scorecard:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScorecardError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScorecardError(f"{source}: expected a mapping at the top level")
    try:
        return Scorecard.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid scorecard"]
        for error in exc.errors():
            lines.append(f"  {_where(error['loc'])}: {error['msg']}")
        raise ScorecardError("\n".join(lines)) from exc


def load_scorecard(path: str | Path | None) -> Scorecard:
    file = Path(path) if path else DEFAULT_SCORECARD
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScorecardError(f"{file}: cannot read the scorecard: {exc.strerror}") from exc
    return parse_scorecard(text, str(file))
