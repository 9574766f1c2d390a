"""Which account an event belongs to. Explicit, never guessed.

In order: the account the message names (group id, `context.groupId`, `account_id`),
else the account of the user's latest `group` call. Otherwise the event is unattributed:
it is still published (nothing is dropped) and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.ingest.segment import GroupMessage, SegmentMessage, explicit_account


@dataclass(frozen=True)
class Membership:
    account_id: str
    occurred_at: datetime


def users_to_look_up(messages: Sequence[SegmentMessage]) -> set[str]:
    return {m.user_id for m in messages if m.user_id and explicit_account(m) is None}


def attribute(
    messages: Sequence[SegmentMessage],
    occurred: Sequence[datetime],
    known: Mapping[str, Membership],
) -> tuple[list[str | None], dict[str, Membership]]:
    """Account per message, and the user→account memberships the request's group calls set.

    Group calls earlier in the same batch count for later messages, as they would have
    had the client sent them one by one. An older group call never overrides a newer one.
    """
    memberships = dict(known)
    changed: dict[str, Membership] = {}
    accounts: list[str | None] = []
    for message, at in zip(messages, occurred, strict=True):
        if isinstance(message, GroupMessage) and message.user_id:
            current = memberships.get(message.user_id)
            if current is None or current.occurred_at <= at:
                memberships[message.user_id] = changed[message.user_id] = Membership(
                    message.group_id, at
                )
        account = explicit_account(message)
        if account is None and message.user_id and message.user_id in memberships:
            account = memberships[message.user_id].account_id
        accounts.append(account)
    return accounts, changed
