"""The consumer side: traits become contacts and accounts; solved tickets become CSAT invitations.

From the traits topic: `identify` (user traits: email, name, role/title) makes or updates a
contact; `group` records that the user belongs to the account and merges the account's
traits (plan, lifecycle stage, MRR/ARR: its segment). An identify that ingest attributed
to an account records that membership too. Each trait is merged on its own event time,
so replays and out-of-order deliveries converge.

A contact change may make unmapped responses mappable: they are attributed in the same
transaction and published as the batch's outputs (before the offsets commit), so a crash
can neither lose nor duplicate them.

From the tickets topic: a ticket that turns solved or closed invites its requester to each
active `ticket_solved` survey whose audience includes them, once per ticket, within the
quiet period, and only while the ticket's solve is recent (a replayed backlog mails nobody);
services/surveys/invitations/ticket_csat.py finds the requester (user id, email, or Zendesk requester id)
and keeps the tickets it cannot match yet, which a later identify in this consumer matches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.surveys.contacts import Contact, contact_from_traits
from services.surveys.invitations.ticket_csat import ZENDESK_SOURCE, TicketCsat, TicketOutcome
from services.surveys.metrics import RESPONSES
from services.surveys.responses.recording import ResponseRecorder, envelopes_for
from services.surveys.store import contacts as contact_store
from services.surveys.store.tickets import SolvedTicket
from shared.account_facts import merge_traits
from shared.consumer import ConsumedEvent, HandlerResult
from shared.events import Envelope, EventType, TicketPayload, TicketStatus, TraitsPayload

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]
ALIAS_TRAIT = "$alias_of"


class SurveysHandler:
    def __init__(self, *, recorder: ResponseRecorder, csat: TicketCsat, invitations_enabled: bool,
                 on_new_invitations: Callable[[], None]) -> None:
        self._recorder = recorder
        self._csat = csat
        self._invitations_enabled = invitations_enabled
        self._on_new_invitations = on_new_invitations

    async def __call__(self, session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        conn = await session.connection()
        result = HandlerResult()
        users: list[tuple[str, dict[str, Any], datetime]] = []
        accounts: list[tuple[str, dict[str, Any], datetime]] = []
        memberships: list[tuple[str, str, datetime]] = []
        tickets: list[tuple[ConsumedEvent, TicketPayload]] = []
        for consumed in events:
            envelope = consumed.envelope
            if envelope.type in (EventType.IDENTIFY, EventType.GROUP):
                try:
                    traits = envelope.payload_as(TraitsPayload).traits
                except ValidationError as exc:
                    result.rejected.append((consumed, f"invalid {envelope.type.value} payload: {exc}"))
                    continue
                if envelope.type is EventType.IDENTIFY:
                    if envelope.user_id and ALIAS_TRAIT not in traits:
                        users.append((envelope.user_id, traits, envelope.occurred_at))
                elif envelope.account_id:
                    accounts.append((envelope.account_id, traits, envelope.occurred_at))
                if envelope.user_id and envelope.account_id:
                    memberships.append((envelope.user_id, envelope.account_id, envelope.occurred_at))
            elif envelope.type is EventType.TICKET:
                try:
                    tickets.append((consumed, envelope.payload_as(TicketPayload)))
                except ValidationError as exc:
                    result.rejected.append((consumed, f"invalid ticket payload: {exc}"))
            # usage and anything else on these topics: not surveys' concern.

        contacts = await self._apply_users(conn, users)
        emails = {c.email for c in contacts if c.email}
        await self._apply_accounts(conn, accounts)
        await contact_store.add_memberships(conn, memberships)
        touched_users = {u for u, _, _ in users} | {u for u, _, _ in memberships}
        mapped = await self._recorder.map_pending(conn, touched_users, emails)
        for decision in mapped:
            result.outputs += envelopes_for(decision)

        def count_mapped() -> None:
            for decision in mapped:
                RESPONSES.labels(decision.response.survey_type.value, decision.outcome.value,
                                 decision.response.channel.value).inc()
        result.after_commit.append(count_mapped)
        if self._invitations_enabled:
            # A contact change may match solved tickets kept earlier (this batch's own tickets
            # see this batch's contacts directly).
            self._count(await self._csat.on_contacts(
                conn, user_ids={c.user_id for c in contacts if c.email},
                zendesk_user_ids={c.zendesk_user_id for c in contacts if c.zendesk_user_id}), result)
            if tickets:
                await self._invite_for_tickets(conn, tickets, result)
        return result

    async def _apply_users(self, conn: AsyncConnection,
                           updates: list[tuple[str, dict[str, Any], datetime]]) -> list[Contact]:
        """Merge identify traits into contacts; returns them (for mapping responses and tickets)."""
        if not updates:
            return []
        stored = await contact_store.lock_contact_traits(conn, (u for u, _, _ in updates))
        merged: dict[str, dict[str, Any]] = {}
        for user_id, incoming, occurred_at in updates:
            merged[user_id] = merge_traits(merged.get(user_id, stored.get(user_id, {})), incoming,
                                           occurred_at)
        contacts = [(contact_from_traits(u, t), t) for u, t in merged.items()]
        await contact_store.save_contacts(conn, contacts)
        return [c for c, _ in contacts]

    async def _apply_accounts(self, conn: AsyncConnection,
                              updates: list[tuple[str, dict[str, Any], datetime]]) -> None:
        if not updates:
            return
        stored = await contact_store.lock_account_traits(conn, (a for a, _, _ in updates))
        merged: dict[str, dict[str, Any]] = {}
        for account_id, incoming, occurred_at in updates:
            merged[account_id] = merge_traits(merged.get(account_id, stored.get(account_id, {})),
                                              incoming, occurred_at)
        await contact_store.save_accounts(conn, merged)

    async def _invite_for_tickets(self, conn: AsyncConnection,
                                  tickets: list[tuple[ConsumedEvent, TicketPayload]],
                                  result: HandlerResult) -> None:
        solved = [solved_ticket(c.envelope, t) for c, t in tickets
                  if t.status in (TicketStatus.SOLVED, TicketStatus.CLOSED)]
        self._count(await self._csat.on_solved(conn, solved), result)

    def _count(self, outcome: TicketOutcome, result: HandlerResult) -> None:
        result.after_commit.append(outcome.count)
        if outcome.created:
            result.after_commit.append(self._on_new_invitations)


def solved_ticket(envelope: Envelope, ticket: TicketPayload) -> SolvedTicket:
    return SolvedTicket(
        source=envelope.source, ticket_id=ticket.ticket_id,
        solved_at=ticket.solved_at or envelope.occurred_at, account_id=envelope.account_id,
        user_id=envelope.user_id, requester_email=ticket.requester_email,
        # Only Zendesk's ids are mapped (by `zendesk_user_id`); another tool's would be a guess.
        requester_id=ticket.requester_id if envelope.source == ZENDESK_SOURCE else None)
