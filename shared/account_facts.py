"""Account facts: what `group` traits tell Churnwatch about an account, read the same way by
every service that needs them (scoring measures them, alerts routes by them).

Traits arrive as partial updates (a group call may carry only `csm_email`), possibly late or
out of order. Each trait is therefore last-writer-wins on its own event time: it is applied
when its event's `occurred_at` is at or after the time that trait was last set, so replaying
or reordering the traits topic converges on the same facts. The per-trait times live inside
the stored traits document under `TRAIT_TIMES_KEY`; that key is reserved and an incoming
trait of that name is dropped.

Reading is lenient: a trait of the wrong type (a `seats` of "many") is treated as absent,
never as zero, and never fails the event; `unreadable_traits()` names such traits so callers
can count them.

The trait and event names here are a public contract, listed in docs/ingest.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

TRAIT_TIMES_KEY = "$occurred_at"


class Trait(StrEnum):
    """`group` trait names Churnwatch reads (anything else is kept but not interpreted)."""

    NAME = "name"
    PLAN = "plan"
    MRR = "mrr"  # monthly recurring revenue, in the account's billing currency
    ARR = "arr"  # used when `mrr` is absent: mrr = arr / 12
    SEATS = "seats"  # licensed seats
    RENEWAL_DATE = "renewal_date"  # ISO 8601 date (or date-time)
    LIFECYCLE_STAGE = "lifecycle_stage"  # onboarding | adoption | expansion | renewal
    PAYMENT_STATUS = "payment_status"  # current | failed | past_due
    ONBOARDING_STARTED_AT = "onboarding_started_at"  # start of onboarding; else `created_at`
    CREATED_AT = "created_at"
    PLAN_EVENT_LIMIT = "plan_event_limit"  # tracked events the plan allows per 30 days
    CHAMPION_USER_ID = "champion_user_id"  # the champion / primary contact's user id
    CSM_NAME = "csm_name"
    CSM_EMAIL = "csm_email"  # the owner CSM: who is told about this account
    CSM_SLACK_CHANNEL = "csm_slack_channel"  # "#cs-acme" or a channel id
    CSM_SLACK_USER = "csm_slack_user"  # a Slack member id (U0123ABC) to mention


class LifecycleStage(StrEnum):
    ONBOARDING = "onboarding"
    ADOPTION = "adoption"
    EXPANSION = "expansion"
    RENEWAL = "renewal"


class PaymentStatus(StrEnum):
    CURRENT = "current"
    FAILED = "failed"
    PAST_DUE = "past_due"


# Spellings billing systems use for the same three states.
_PAYMENT_ALIASES = {
    "current": PaymentStatus.CURRENT, "ok": PaymentStatus.CURRENT, "paid": PaymentStatus.CURRENT,
    "active": PaymentStatus.CURRENT, "failed": PaymentStatus.FAILED,
    "payment_failed": PaymentStatus.FAILED, "past_due": PaymentStatus.PAST_DUE,
    "pastdue": PaymentStatus.PAST_DUE, "past-due": PaymentStatus.PAST_DUE,
    "overdue": PaymentStatus.PAST_DUE, "unpaid": PaymentStatus.PAST_DUE,
}


class OutcomeEvent(StrEnum):
    """`track` event names that report what finally happened to an account (case-insensitive)."""

    ACCOUNT_CHURNED = "account churned"
    SUBSCRIPTION_RENEWED = "subscription renewed"

    @classmethod
    def of(cls, event_name: str) -> OutcomeEvent | None:
        try:
            return cls(" ".join(event_name.lower().replace("_", " ").split()))
        except ValueError:
            return None


@dataclass(frozen=True)
class AccountFacts:
    """The interpreted traits of one account; None means "not known", never zero."""

    name: str | None = None
    plan: str | None = None
    mrr: float | None = None
    seats: int | None = None
    renewal_date: date | None = None
    lifecycle_stage: LifecycleStage | None = None
    payment_status: PaymentStatus | None = None
    onboarding_started_at: datetime | None = None
    plan_event_limit: int | None = None
    champion_user_id: str | None = None
    csm_name: str | None = None
    csm_email: str | None = None
    csm_slack_channel: str | None = None
    csm_slack_user: str | None = None

    @property
    def arr(self) -> float | None:
        return None if self.mrr is None else self.mrr * 12

    @classmethod
    def from_traits(cls, traits: Mapping[str, Any]) -> AccountFacts:
        read = {trait: reader(traits.get(trait)) for trait, reader in _READERS.items()}
        mrr = read[Trait.MRR]
        if mrr is None and read[Trait.ARR] is not None:
            mrr = read[Trait.ARR] / 12
        return cls(
            name=read[Trait.NAME],
            plan=read[Trait.PLAN],
            mrr=mrr,
            seats=read[Trait.SEATS],
            renewal_date=read[Trait.RENEWAL_DATE],
            lifecycle_stage=read[Trait.LIFECYCLE_STAGE],
            payment_status=read[Trait.PAYMENT_STATUS],
            onboarding_started_at=read[Trait.ONBOARDING_STARTED_AT] or read[Trait.CREATED_AT],
            plan_event_limit=read[Trait.PLAN_EVENT_LIMIT],
            champion_user_id=read[Trait.CHAMPION_USER_ID],
            csm_name=read[Trait.CSM_NAME],
            csm_email=read[Trait.CSM_EMAIL],
            csm_slack_channel=read[Trait.CSM_SLACK_CHANNEL],
            csm_slack_user=read[Trait.CSM_SLACK_USER],
        )


def unreadable_traits(traits: Mapping[str, Any]) -> list[str]:
    """Names of known traits that are present but cannot be read (and so count as absent)."""
    return [str(trait) for trait, reader in _READERS.items()
            if traits.get(trait) not in (None, "") and reader(traits[trait]) is None]


def merge_traits(
    stored: Mapping[str, Any], incoming: Mapping[str, Any], occurred_at: datetime
) -> dict[str, Any]:
    """`stored` with every incoming trait that is not older than the stored one applied."""
    merged = {k: v for k, v in stored.items() if k != TRAIT_TIMES_KEY}
    raw_times = stored.get(TRAIT_TIMES_KEY)
    times: dict[str, str] = dict(raw_times) if isinstance(raw_times, Mapping) else {}
    for name, value in incoming.items():
        if name == TRAIT_TIMES_KEY:
            continue
        previous = _time(times.get(name))
        if previous is None or occurred_at >= previous:
            merged[name] = value
            times[name] = occurred_at.isoformat()
    merged[TRAIT_TIMES_KEY] = times
    return merged


# --- lenient readers: a value that does not fit is None ------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids sent as numbers
    return _text(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "").strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and 0 <= value < float("inf"):
        return float(value)
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _date(value: Any) -> date | None:
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text[:10]) if len(text) >= 10 else None
        except ValueError:
            return None
    return None


def _stage(value: Any) -> LifecycleStage | None:
    if not isinstance(value, str):
        return None
    try:
        return LifecycleStage(value.strip().lower())
    except ValueError:
        return None


def _payment(value: Any) -> PaymentStatus | None:
    return _PAYMENT_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None


_READERS: dict[Trait, Callable[[Any], Any]] = {
    Trait.NAME: _text, Trait.PLAN: _text, Trait.MRR: _number, Trait.ARR: _number,
    Trait.SEATS: _whole, Trait.RENEWAL_DATE: _date, Trait.LIFECYCLE_STAGE: _stage,
    Trait.PAYMENT_STATUS: _payment, Trait.ONBOARDING_STARTED_AT: _time,
    Trait.CREATED_AT: _time, Trait.PLAN_EVENT_LIMIT: _whole, Trait.CHAMPION_USER_ID: _id,
    Trait.CSM_NAME: _text, Trait.CSM_EMAIL: _text, Trait.CSM_SLACK_CHANNEL: _text,
    Trait.CSM_SLACK_USER: _text,
}
