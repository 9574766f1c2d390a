"""What ingest makes of Segment messages, without the network: its own parser, attribution and
envelope, so an in-process backtest scores exactly the events the API would have published."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from services.ingest.attribution import Membership, attribute
from services.ingest.segment import event_id_for, occurred_at, to_envelope
from services.ingest.validation import Limits, validate_batch
from shared.events import Envelope

BATCH = 500
LIMITS = Limits(max_event_bytes=32_768, max_batch_items=BATCH)


def envelopes_by_account(
    messages: Iterable[dict[str, Any]], source: str = "backtest"
) -> dict[str, list[Envelope]]:
    """Each account's envelopes, in the order sent; messages no account owns are left out."""
    by_account: dict[str, list[Envelope]] = defaultdict(list)
    memberships: dict[str, Membership] = {}
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        received = datetime.now(UTC)
        validated = validate_batch({"batch": batch}, LIMITS)
        parsed = [v.message for v in validated]
        occurred = [occurred_at(m, received) for m in parsed]
        accounts, changed = attribute(parsed, occurred, memberships)
        memberships.update(changed)
        for item, account in zip(validated, accounts, strict=True):
            if account is not None:
                by_account[account].append(
                    to_envelope(item.message, event_id=event_id_for(item.message, item.raw),
                                account_id=account, source=source, received_at=received)
                )
        batch.clear()

    for message in messages:
        batch.append(message)
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    return dict(by_account)
