"""Who to tell about an account: contact facts folded from `group` traits, by event time.

Traits arrive as partial updates (a group call may carry only `csm_email`), possibly late
or out of order. Each trait is therefore last-writer-wins on its own event time: a trait is
applied when its event's `occurred_at` is at or after the time that trait was last set, so
replaying or reordering the traits topic converges on the same contact.

The per-trait times live inside the stored traits document under `TRAIT_TIMES_KEY`; that
key is reserved and an incoming trait of that name is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TRAIT_TIMES_KEY = "$occurred_at"


@dataclass(frozen=True)
class Contact:
    account_id: str
    account_name: str | None = None
    csm_email: str | None = None
    csm_slack_channel: str | None = None


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
        previous = _parse_time(times.get(name))
        if previous is None or occurred_at >= previous:
            merged[name] = value
            times[name] = occurred_at.isoformat()
    merged[TRAIT_TIMES_KEY] = times
    return merged


def contact_from_traits(account_id: str, traits: Mapping[str, Any]) -> Contact:
    return Contact(
        account_id=account_id,
        account_name=_text(traits.get("name")),
        csm_email=_text(traits.get("csm_email")),
        csm_slack_channel=_text(traits.get("csm_slack_channel")),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
