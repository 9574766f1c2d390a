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


def explicit_accounts(messages: Sequence[SegmentMessage]) -> list[str | None]:
    return [explicit_account(m) for m in messages]


def users_to_look_up(messages: Sequence[SegmentMessage],
                     explicit: Sequence[str | None] | None = None) -> set[str]:
    """Users whose membership decides some message's account (it names none itself)."""
    named = explicit if explicit is not None else explicit_accounts(messages)
    return {m.user_id for m, account in zip(messages, named, strict=True) if m.user_id and account is None}


def attribute(
    messages: Sequence[SegmentMessage],
    occurred: Sequence[datetime],
    known: Mapping[str, Membership],
    explicit: Sequence[str | None] | None = None,
) -> tuple[list[str | None], dict[str, Membership]]:
    """Account per message, and the user→account memberships the request's group calls set.

    Group calls earlier in the same batch count for later messages, as they would have
    had the client sent them one by one. An older group call never overrides a newer one.
    `explicit`: each message's `explicit_account`, when the caller has it already.
    """
    named = explicit if explicit is not None else explicit_accounts(messages)
    memberships = dict(known)
    changed: dict[str, Membership] = {}
    accounts: list[str | None] = []
    for message, at, account in zip(messages, occurred, named, strict=True):
        if isinstance(message, GroupMessage) and message.user_id:
            current = memberships.get(message.user_id)
            if current is None or current.occurred_at <= at:
                memberships[message.user_id] = changed[message.user_id] = Membership(
                    message.group_id, at
                )
        if account is None and message.user_id and message.user_id in memberships:
            account = memberships[message.user_id].account_id
        accounts.append(account)
    return accounts, changed
