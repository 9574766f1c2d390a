"""What scoring knows about one account, and how one timeline entry changes it. Pure: no I/O.

The model is folded from the account's timeline entries (events, and daily ticks of event
time) in (time, tick-last, id) order. Most of it is order-independent by construction
(decayed counters, latest-by-event-time answers, per-ticket state, per-trait last-writer-
wins), and the rest (the band with its hysteresis, signal episodes, the recent score peaks)
is a path that `engine.AccountEngine` always walks in event-time order.

Times are float epoch seconds: cheaper than datetimes on the hot path and compact when
stored. The model encodes to a JSON list (`encode`/`decode`), ~1 KB for a typical account.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from pydantic import ValidationError

from services.scoring.config import Scorecard
from shared.account_facts import TRAIT_TIMES_KEY, AccountFacts, OutcomeEvent, Trait
from shared.events import (
    SURVEY_SCORE_RANGES,
    Envelope,
    EventType,
    SurveyResponsePayload,
    SurveyType,
    TicketPayload,
    TraitsPayload,
    UsagePayload,
)

DAY = 86_400.0
USAGE_RECENT_HALF_LIFE = 7 * DAY
USAGE_BASELINE_HALF_LIFE = 28 * DAY
TICKET_RECENT_HALF_LIFE = 7 * DAY
TICKET_BASELINE_HALF_LIFE = 56 * DAY
USER_SAMPLE = 24  # users kept in the bottom-k sample (exact below this many)
USER_FORGET = 90 * DAY  # a user unseen this long leaves the sample
MAX_FEATURES = 24
MAX_USAGE_NAMES = 32  # per-event-name counters kept (the busiest), for the churn-risk features
USAGE_BY_NAME_HALF_LIFE = 28 * DAY
# The same names over about a quarter: churn follows a fall against the account's own longer
# level (Fighting Churn With Data, ch. 3 and 7, measures rates over months, not weeks).
USAGE_BY_NAME_LONG_HALF_LIFE = 91 * DAY
MAX_CLOSED_TICKETS = 10  # remembered only so a late, older update cannot reopen them
MAX_OPEN_TICKETS = 40
MAX_ITEMS = 5  # detractor / promoter / competitor items kept per account
SUBJECT_CHARS = 120
COMMENT_CHARS = 240
USAGE_KINDS = (EventType.TRACK, EventType.PAGE, EventType.SCREEN)
# Traits scoring reads; the rest (contacts, custom traits) is alerts' or nobody's business.
SCORING_TRAITS = frozenset(
    {
        Trait.NAME,
        Trait.PLAN,
        Trait.MRR,
        Trait.ARR,
        Trait.SEATS,
        Trait.RENEWAL_DATE,
        Trait.LIFECYCLE_STAGE,
        Trait.PAYMENT_STATUS,
        Trait.ONBOARDING_STARTED_AT,
        Trait.CREATED_AT,
        Trait.PLAN_EVENT_LIMIT,
        Trait.CHAMPION_USER_ID,
    }
)

# Entry kinds, in the order they sort at the same instant (ticks after events).
USAGE, TRAITS, TICKET, SURVEY, OUTCOME, OVERRIDE, TICK = 0, 1, 2, 3, 4, 5, 9


class UnusableEvent(ValueError):
    """The event's payload does not fit its type: it goes to the dead-letter topic."""


@dataclass(slots=True)
class Entry:
    """One step of an account's timeline, reduced to what scoring needs."""

    t: float
    kind: int
    # A stable 32-bit hash of the event id (ticks: 0): tells duplicates apart among the few
    # pending entries of one account, and orders entries of the same instant.
    id: int
    data: list[Any]

    def key(self) -> tuple[float, bool, int]:
        return (self.t, self.kind == TICK, self.id)

    def encode(self) -> list[Any]:
        return [self.t, self.kind, self.id, self.data]

    @classmethod
    def decode(cls, raw: list[Any]) -> Entry:
        return cls(raw[0], raw[1], raw[2], raw[3])


def stable_hash(text: str) -> int:
    """A 32-bit hash that is the same in every process (unlike `hash()`)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def tick(t: float) -> Entry:
    return Entry(t, TICK, 0, [])


# --- events -> entries ----------------------------------------------------------------------


class Competitors:
    """Case-insensitive whole-word matching of the configured competitor names."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = sorted({n.strip() for n in names if n.strip()}, key=str.lower)
        self._pattern = (
            re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in self._names) + r")(?!\w)", re.IGNORECASE)
            if self._names
            else None
        )
        self._canonical = {n.lower(): n for n in self._names}

    def named_in(self, *texts: str | None) -> list[str]:
        if self._pattern is None:
            return []
        found: list[str] = []
        for text in texts:
            if text:
                for match in self._pattern.finditer(text):
                    name = self._canonical[match.group(1).lower()]
                    if name not in found:
                        found.append(name)
        return found


def excerpt(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usage_payload(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(event name, properties) of a usage payload; checked by hand when plainly valid (the
    hot path: most events are usage), else by `UsagePayload`, whose errors are the contract."""
    name, properties = payload.get("event"), payload.get("properties", {})
    if (
        type(name) is str
        and type(properties) is dict
        and (payload.get("anonymous_id") is None or type(payload["anonymous_id"]) is str)
    ):
        return name, properties
    usage = UsagePayload.model_validate(payload)
    return usage.event, usage.properties


_OUTCOMES: dict[str, OutcomeEvent | None] = {}


def _outcome_of(event_name: str) -> OutcomeEvent | None:
    """`OutcomeEvent.of`, remembered per name (a product has a few hundred event names)."""
    try:
        return _OUTCOMES[event_name]
    except KeyError:
        if len(_OUTCOMES) > 10_000:
            _OUTCOMES.clear()
        found = _OUTCOMES[event_name] = OutcomeEvent.of(event_name)
        return found


def to_entry(event: Envelope, card: Scorecard, competitors: Competitors) -> Entry | None:
    """The timeline entry of an event; None for events scoring does not use (identify).

    Raises UnusableEvent for a payload that does not fit its type, before anything changes.
    """
    t = event.occurred_at.timestamp()
    ident = stable_hash(event.event_id)
    try:
        if event.type in USAGE_KINDS:
            event_name, properties = _usage_payload(event.payload)
            outcome = _outcome_of(event_name) if event.type is EventType.TRACK else None
            if outcome is not None:
                renewal = properties.get("renewal_date") or properties.get("next_renewal_date")
                return Entry(
                    t, OUTCOME, ident, [outcome.value, renewal if isinstance(renewal, str) else None]
                )
            name = event_name.strip()[:100] if event.type is EventType.TRACK else None
            return Entry(t, USAGE, ident, [event.user_id, name])
        if event.type is EventType.GROUP:
            traits = event.payload_as(TraitsPayload).traits
            return Entry(t, TRAITS, ident, [{k: v for k, v in traits.items() if k in SCORING_TRAITS}])
        if event.type is EventType.TICKET:
            ticket = event.payload_as(TicketPayload)
            rule = card.signals.high_severity_ticket
            tags = {tag.lower() for tag in ticket.tags}
            escalated = ticket.priority.value in rule.priorities or bool(
                tags & {x.lower() for x in rule.tags}
            )
            return Entry(
                t,
                TICKET,
                ident,
                [
                    ticket.ticket_id,
                    ticket.status.value,
                    ticket.priority.value,
                    excerpt(ticket.subject, SUBJECT_CHARS),
                    ticket.created_at.timestamp() if ticket.created_at and ticket.created_at.tzinfo else None,
                    int(escalated),
                    competitors.named_in(ticket.subject, ticket.comment),
                    excerpt(ticket.comment, COMMENT_CHARS),
                ],
            )
        if event.type is EventType.SURVEY_RESPONSE:
            response = event.payload_as(SurveyResponsePayload)
            valid = SURVEY_SCORE_RANGES[response.survey_type]
            if response.score not in valid:
                raise UnusableEvent(
                    f"{response.survey_type} score {response.score} is outside "
                    f"{valid.start}..{valid.stop - 1}"
                )
            return Entry(
                t,
                SURVEY,
                ident,
                [
                    response.response_id,
                    response.survey_type.value,
                    response.score,
                    event.user_id,
                    excerpt(response.comment, COMMENT_CHARS),
                    competitors.named_in(response.comment),
                ],
            )
        if event.type is EventType.HEALTH_OVERRIDE:
            from services.scoring.overrides import override_entry_data  # the API's own contract

            return Entry(t, OVERRIDE, ident, override_entry_data(event))
    except ValidationError as exc:
        raise UnusableEvent(f"{event.type} payload: {exc}") from exc
    return None


# --- the model ------------------------------------------------------------------------------


def decayed(counter: list[float] | None, at: float, half_life: float) -> float:
    """The value of a [value, as_of] exponentially decayed counter seen from `at`."""
    if counter is None:
        return 0.0
    value, as_of = counter
    if at <= as_of:
        return value
    return value * math.exp2(-(at - as_of) / half_life)


def bump(counter: list[float] | None, at: float, half_life: float) -> list[float]:
    """Add one event at `at`; an event older than the counter adds its own decayed weight."""
    if counter is None:
        return [1.0, at]
    value, as_of = counter
    if at >= as_of:
        return [value * math.exp2(-(at - as_of) / half_life) + 1.0, at]
    return [value + math.exp2(-(as_of - at) / half_life), as_of]


@dataclass(slots=True, eq=False)
class Model:
    """The folded state of one account.

    The fields, in this order, are the stored state (`encode`): append new ones at the end, never
    reorder (states on disk use it); a state stored before a field was appended decodes with the
    field's default.
    """

    # condition signal -> [episode, reference, since]
    active: dict[str, list[Any]] = field(default_factory=dict)
    band: str | None = None
    champion_changed_at: float | None = None
    champion_previous: str | None = None
    champion_seen: float | None = None
    churned_at: float | None = None
    clock: float | None = None  # the latest time applied (event or tick)
    # signal items: [response_id, type, score, at, user, comment]
    detractors: list[list[Any]] = field(default_factory=list)
    episodes: dict[str, int] = field(default_factory=dict)  # signal type -> episodes started so far
    events: int = 0  # events applied (ticks are not events)
    features: dict[str, float] = field(default_factory=dict)  # event name (lower) -> last used
    first_at: float | None = None
    first_usage: float | None = None
    late: int = 0  # events that arrived after the lateness bound (applied best-effort)
    last_usage: float | None = None
    # [competitor, source ("ticket"|"survey"), source id, at, excerpt]
    mentions: list[list[Any]] = field(default_factory=list)
    milestone_at: float | None = None
    # [id, kind ("score"|"band"), value, reason, author, set_at, expires_at]
    override: list[Any] | None = None
    peaks: list[float | None] = field(default_factory=list)  # [first day number, highest score per day]
    promoters: list[list[Any]] = field(default_factory=list)
    renewed_at: float | None = None
    score: float | None = None
    segment: str | None = None
    # surveys: type -> [response_id, score, at, user, comment, previous score]
    surveys: dict[str, list[Any]] = field(default_factory=dict)
    t_base: list[float] | None = None
    t_recent: list[float] | None = None
    # tickets: id -> [status, priority, opened_at, updated_at, escalated, subject]
    tickets: dict[str, list[Any]] = field(default_factory=dict)
    traits: dict[str, list[Any]] = field(default_factory=dict)  # trait -> [value, epoch it was set]
    u_base: list[float] | None = None
    u_recent: list[float] | None = None
    users: list[list[float]] = field(default_factory=list)  # bottom-k sample: [32-bit hash, last seen]
    values: list[float | None] = field(default_factory=list)  # per measure of the segment, in order
    evaluated_at: float | None = None
    # event name (lower) -> decayed counter: what the account does, not only how much
    usage_by_name: dict[str, list[float]] = field(default_factory=dict)
    # the place among the segment's peers at the last evaluation (`services.scoring.peers`):
    # [percentile, events a week, the peers' median a week, peers], None if not placed
    peer: list[Any] | None = None
    usage_by_name_long: dict[str, list[float]] = field(default_factory=dict)  # 91-day half-life
    _facts: AccountFacts | None = field(default=None, init=False, repr=False)

    # --- facts ---------------------------------------------------------------------------

    @property
    def facts(self) -> AccountFacts:
        if self._facts is None:
            self._facts = AccountFacts.from_traits({k: v[0] for k, v in self.traits.items()})
        return self._facts

    def merge_traits(self, incoming: dict[str, Any], at: datetime) -> None:
        """Per-trait last-writer-wins on event time: the rule of `shared.account_facts.merge_traits`."""
        # The rule applied on epoch seconds in place (no document of ISO times built and read
        # back per event): a trait not older than the stored one wins; times are kept at the
        # microsecond, as their ISO form would keep them.
        traits = self.traits
        t = at.timestamp()
        for name, value in incoming.items():
            if name == TRAIT_TIMES_KEY:
                continue
            known = traits.get(name)
            if known is None or t >= known[1]:
                traits[name] = [value, t]
        self._facts = None

    # --- encoding ------------------------------------------------------------------------

    def encode(self) -> list[Any]:
        return list(_get_stored(self))

    @classmethod
    def decode(cls, raw: list[Any]) -> Model:
        if len(raw) > len(_STORED):
            raise ValueError(f"a stored model of {len(raw)} fields is newer than this code's")
        model = cls()
        # A state stored before a field was appended keeps that field's fresh default.
        for name, value in zip(_STORED, raw, strict=False):
            setattr(model, name, value)
        return model

    def copy(self) -> Model:
        # Shallow below the top containers: the fold replaces inner lists (a ticket's row, a
        # counter, a user's sample entry, a signal item) and never changes one in place, so a
        # copy may share them. The containers it changes in place (every field whose default
        # is an empty dict or list) are copied. Every event snapshots the model: the hot path.
        return _copy(self)

    @property
    def churned(self) -> bool:
        return self.churned_at is not None and (self.renewed_at is None or self.renewed_at < self.churned_at)


# Derived from the fields, so each name is written once: the stored ones (all but the facts
# cache), and for `copy` the containers copied and the rest shared.
_STORED = tuple(f.name for f in fields(Model) if f.init)
_CONTAINERS = tuple(f.name for f in fields(Model) if f.default_factory is not MISSING)
_SHARED = tuple(f.name for f in fields(Model) if f.default_factory is MISSING)
_get_stored = attrgetter(*_STORED)


def _write_copy() -> Callable[[Model], Model]:
    """`Model.copy` written out from the fields once, as `dataclasses` writes `__init__`: a loop of
    getattr and setattr over the fields would double the cost of the snapshot every event takes."""
    lines = [f"    clone.{name} = model.{name}" for name in _SHARED]
    lines += [f"    clone.{name} = model.{name}.copy()" for name in _CONTAINERS]
    source = "def copy(model):\n    clone = new(Model)\n" + "\n".join(lines) + "\n    return clone\n"
    namespace: dict[str, Any] = {"Model": Model, "new": Model.__new__}
    exec(source, namespace)
    copy: Callable[[Model], Model] = namespace["copy"]
    return copy


_copy = _write_copy()


# --- applying one entry ---------------------------------------------------------------------


def apply(model: Model, entry: Entry, card: Scorecard) -> None:
    """Change `model` by `entry` (the caller evaluates the score afterwards)."""
    t = entry.t
    model.clock = t if model.clock is None else max(model.clock, t)
    if entry.kind == TICK:
        return
    model.events += 1
    if model.first_at is None or t < model.first_at:
        model.first_at = t
    kind = entry.kind
    if kind == USAGE:
        _usage(model, t, entry.data, card)
    elif kind == TRAITS:
        _traits(model, t, entry.data[0])
    elif kind == TICKET:
        _ticket(model, t, entry.data)
    elif kind == SURVEY:
        _survey(model, t, entry.data, card)
    elif kind == OUTCOME:
        _outcome(model, t, entry.data)
    elif kind == OVERRIDE:
        _override(model, entry.data)


def _usage(model: Model, t: float, data: list[Any], card: Scorecard) -> None:
    user, name = data
    model.u_recent = bump(model.u_recent, t, USAGE_RECENT_HALF_LIFE)
    model.u_base = bump(model.u_base, t, USAGE_BASELINE_HALF_LIFE)
    if model.first_usage is None or t < model.first_usage:
        model.first_usage = t
    if model.last_usage is None or t > model.last_usage:
        model.last_usage = t
    if user:
        _see_user(model, user, t)
        champion = model.facts.champion_user_id
        if (
            champion is not None
            and user == champion
            and (model.champion_seen is None or t > model.champion_seen)
        ):
            model.champion_seen = t
    if name:
        lowered = name.lower()
        _count_by_name(model.usage_by_name, model.usage_by_name_long, lowered, t)
        if (
            card.milestones
            and lowered in _lowered(card.milestones)
            and (model.milestone_at is None or t < model.milestone_at)
        ):
            model.milestone_at = t
        if not card.key_features or lowered in _lowered(card.key_features):
            features = model.features
            if t > features.get(lowered, -math.inf):
                features[lowered] = int(t)  # a second is precise enough, and shorter stored
            if len(features) > MAX_FEATURES:
                del features[min(features, key=lambda f: (features[f], f))]


def _count_by_name(
    counters: dict[str, list[float]], long_counters: dict[str, list[float]], name: str, t: float
) -> None:
    counters[name] = bump(counters.get(name), t, USAGE_BY_NAME_HALF_LIFE)
    long_counters[name] = bump(long_counters.get(name), t, USAGE_BY_NAME_LONG_HALF_LIFE)
    if len(counters) > MAX_USAGE_NAMES:
        # The quietest name leaves (both counters); ties by name, so every replay keeps the same ones.
        quietest = min(counters, key=lambda n: (decayed(counters[n], t, USAGE_BY_NAME_HALF_LIFE), n))
        del counters[quietest]
        long_counters.pop(quietest, None)


_LOWERED: dict[int, frozenset[str]] = {}


def _lowered(names: list[str]) -> frozenset[str]:
    cached = _LOWERED.get(id(names))
    if cached is None:
        cached = _LOWERED[id(names)] = frozenset(n.lower() for n in names)
    return cached


def _see_user(model: Model, user: str, t: float) -> None:
    """Bottom-k sample of users by hash, each with its last activity; exact below k users."""
    h = stable_hash(user)
    users = model.users
    for i, entry in enumerate(users):
        if entry[0] == h:
            if t > entry[1]:
                users[i] = [h, t]  # replaced, not changed: model copies share entries
            return
    if model.clock is not None:
        horizon = model.clock - USER_FORGET
        if any(u[1] < horizon for u in users):
            users[:] = [u for u in users if u[1] >= horizon]
    if len(users) < USER_SAMPLE:
        users.append([h, t])
        return
    largest = max(range(len(users)), key=lambda i: users[i][0])
    if h < users[largest][0]:
        users[largest] = [h, t]


def active_users(model: Model, since: float) -> tuple[float, bool]:
    """Distinct users active since `since`: (estimate, exact?)."""
    users = model.users
    active = sum(1 for u in users if u[1] >= since)
    if len(users) < USER_SAMPLE:
        return float(active), True
    largest = max(u[0] for u in users)
    total = (USER_SAMPLE - 1) / ((largest + 1) / 2**32)  # k-minimum-values estimate
    return active / len(users) * total, False


def _traits(model: Model, t: float, incoming: dict[str, Any]) -> None:
    before = model.facts.champion_user_id
    model.merge_traits(incoming, moment(t))
    after = model.facts.champion_user_id
    if after != before:
        if before is not None and after is not None:
            model.champion_previous = before
        model.champion_changed_at = t
        model.champion_seen = None


def _ticket(model: Model, t: float, data: list[Any]) -> None:
    ticket_id, status, priority, subject, created_at, escalated, named, comment = data
    known = model.tickets.get(ticket_id)
    if known is not None and known[3] > t:
        return  # a late, older update: the ticket has moved on since
    is_open = status not in ("solved", "closed")
    if known is None:
        opened = created_at if created_at is not None else t
        model.t_recent = bump(model.t_recent, opened, TICKET_RECENT_HALF_LIFE)
        model.t_base = bump(model.t_base, opened, TICKET_BASELINE_HALF_LIFE)
    else:
        opened = known[2]
    model.tickets[ticket_id] = [status, priority, opened, t, escalated, subject if is_open else None]
    for competitor in named:
        _mention(model, competitor, "ticket", ticket_id, t, comment or subject)
    tickets = model.tickets
    closed = [(v[3], k) for k, v in tickets.items() if v[0] in ("solved", "closed")]
    if len(closed) > MAX_CLOSED_TICKETS:
        for _, k in sorted(closed)[: len(closed) - MAX_CLOSED_TICKETS]:
            del tickets[k]
    open_ids = [(v[3], k) for k, v in tickets.items() if v[0] not in ("solved", "closed")]
    if len(open_ids) > MAX_OPEN_TICKETS:  # a runaway integration: keep the newest
        for _, k in sorted(open_ids)[: len(open_ids) - MAX_OPEN_TICKETS]:
            del tickets[k]


def _mention(model: Model, competitor: str, source: str, source_id: str, t: float, text: str | None) -> None:
    mentions = [m for m in model.mentions if not (m[0] == competitor and m[2] == source_id)]
    mentions.append([competitor, source, source_id, t, text])
    mentions.sort(key=lambda m: (m[3], m[2], m[0]))
    model.mentions = mentions[-MAX_ITEMS:]


def _survey(model: Model, t: float, data: list[Any], card: Scorecard) -> None:
    response_id, survey_type, score, user, comment, named = data
    latest = model.surveys.get(survey_type)
    if latest is None or latest[0] == response_id or latest[2] <= t:
        previous = (
            latest[5]
            if latest is not None and latest[0] == response_id
            else (latest[1] if latest is not None else None)
        )
        model.surveys[survey_type] = [response_id, score, t, user, comment, previous]
    item = [response_id, survey_type, score, t, user, comment]
    rules = card.signals
    negative = {
        "nps": rules.detractor_response.nps_max,
        "csat": rules.detractor_response.csat_max,
        "ces": rules.detractor_response.ces_max,
    }[survey_type]
    model.detractors = _items(model.detractors, item, score <= negative)
    model.promoters = _items(
        model.promoters, item, survey_type == SurveyType.NPS and score >= rules.promoter_response.nps_min
    )
    for competitor in named:
        _mention(model, competitor, "survey", response_id, t, comment)


def _items(items: list[list[Any]], item: list[Any], qualifies: bool) -> list[list[Any]]:
    """Keep one item per response, and per respondent and survey type the newest answer only."""
    response_id, survey_type, _, t, user, _ = item
    kept = []
    for old in items:
        if old[0] == response_id:
            if old[3] > t:
                return items  # an older revision arriving late
            continue
        if user is not None and old[4] == user and old[1] == survey_type and old[3] <= t:
            continue  # the same person answered again
        kept.append(old)
    if qualifies:
        kept.append(item)
    kept.sort(key=lambda i: (i[3], i[0]))
    return kept[-MAX_ITEMS:]


def _outcome(model: Model, t: float, data: list[Any]) -> None:
    outcome, renewal_date = data
    if outcome == OutcomeEvent.ACCOUNT_CHURNED.value:
        model.churned_at = t if model.churned_at is None else max(model.churned_at, t)
    else:
        model.renewed_at = t if model.renewed_at is None else max(model.renewed_at, t)
        if renewal_date:
            model.merge_traits({Trait.RENEWAL_DATE.value: renewal_date}, moment(t))


def _override(model: Model, data: list[Any]) -> None:
    action, override_id, *rest = data
    if action == "set":
        model.override = [override_id, *rest]
    elif model.override is not None and (override_id is None or model.override[0] == override_id):
        model.override = None


def expire(model: Model, card: Scorecard) -> None:
    """Drop what has lapsed by the model's clock: overrides, old survey and competitor items."""
    now = model.clock
    if now is None:
        return
    if model.override is not None and model.override[6] is not None and now >= model.override[6]:
        model.override = None
    rules = card.signals
    if model.detractors:
        horizon = now - rules.detractor_response.expires_after_days * DAY
        model.detractors = [i for i in model.detractors if i[3] > horizon]
    if model.promoters:
        horizon = now - rules.promoter_response.expires_after_days * DAY
        model.promoters = [i for i in model.promoters if i[3] > horizon]
    if model.mentions:
        horizon = now - rules.competitor_mentioned.expires_after_days * DAY
        model.mentions = [m for m in model.mentions if m[3] > horizon]
