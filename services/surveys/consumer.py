"""The consumer side: traits become contacts and accounts; solved tickets become CSAT invitations.

From the traits topic: `identify` (user traits: email, name, role/title) makes or updates a
contact; `group` records that the user belongs to the account and merges the account's
traits (plan, lifecycle stage, MRR/ARR: its segment). An identify that ingest attributed
to an account records that membership too. Each trait is merged on its own event time,
so replays and out-of-order deliveries converge.

A contact change may make unmapped responses mappable: they are attributed in the same
transaction and published as the batch's outputs (before the offsets commit), so a crash
can neither lose nor duplicate them.

From the tickets topic: a ticket that turns solved or closed invites its requester (the
user id's contact, else the requester email) to each active `ticket_solved` survey whose
audience includes them, once per ticket, within the quiet period, and only while the
ticket's solve is recent (a replayed backlog mails nobody).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.surveys import campaign_store, contact_store
from services.surveys.attribution import normalize_email
from services.surveys.contacts import contact_from_traits
from services.surveys.definitions import Status, Trigger
from services.surveys.eligibility import Membership, Skip, audience_account, ticket_too_old
from services.surveys.inviting import Timing, try_invite
from services.surveys.metrics import INVITATIONS_CREATED, INVITATIONS_SKIPPED, RESPONSES
from services.surveys.recording import ResponseRecorder, envelopes_for
from services.surveys.segments import ArrTier, segment_of
from shared.account_facts import merge_traits
from shared.consumer import ConsumedEvent, HandlerResult
from shared.events import EventType, TicketPayload, TicketStatus, TraitsPayload

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]
ALIAS_TRAIT = "$alias_of"


class SurveysHandler:
    def __init__(self, *, recorder: ResponseRecorder, clock: Clock, tiers: list[ArrTier],
                 timing: Timing, ticket_max_age: timedelta, invitations_enabled: bool,
                 on_new_invitations: Callable[[], None]) -> None:
        self._recorder = recorder
        self._clock = clock
        self._tiers = tiers
        self._timing = timing
        self._ticket_max_age = ticket_max_age
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

        emails = await self._apply_users(conn, users)
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
        if tickets and self._invitations_enabled:
            await self._invite_for_tickets(conn, tickets, result)
        return result

    async def _apply_users(self, conn: AsyncConnection,
                           updates: list[tuple[str, dict[str, Any], datetime]]) -> set[str]:
        """Merge identify traits into contacts; returns the contacts' emails (for mapping)."""
        if not updates:
            return set()
        stored = await contact_store.lock_contact_traits(conn, (u for u, _, _ in updates))
        merged: dict[str, dict[str, Any]] = {}
        for user_id, incoming, occurred_at in updates:
            merged[user_id] = merge_traits(merged.get(user_id, stored.get(user_id, {})), incoming,
                                           occurred_at)
        contacts = [(contact_from_traits(u, t), t) for u, t in merged.items()]
        await contact_store.save_contacts(conn, contacts)
        return {c.email for c, _ in contacts if c.email}

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
        solved = [(c, t) for c, t in tickets if t.status in (TicketStatus.SOLVED, TicketStatus.CLOSED)]
        if not solved:
            return
        definitions = await campaign_store.list_definitions(conn, trigger=Trigger.TICKET_SOLVED,
                                                            status=Status.ACTIVE)
        if not definitions:
            return
        now = self._clock()
        created: list[str] = []
        skipped: list[str] = []
        for consumed, ticket in solved:
            envelope = consumed.envelope
            solved_at = ticket.solved_at or envelope.occurred_at
            if ticket_too_old(solved_at, now=now, max_age=self._ticket_max_age):
                skipped += [Skip.TICKET_TOO_OLD] * len(definitions)
                continue
            contact = (await contact_store.load_contact(conn, envelope.user_id)
                       if envelope.user_id else None)
            requester = normalize_email(ticket.requester_email)
            if contact is None and requester is not None:
                found = await contact_store.contacts_with_email(conn, requester)
                contact = found[0] if found else None
            email = (contact.email if contact and contact.email else None) or requester
            if email is None:
                skipped += [Skip.NO_EMAIL] * len(definitions)
                continue
            member_rows = (await contact_store.memberships_of(conn, {contact.user_id})).get(
                contact.user_id, []) if contact else []
            traits = await contact_store.account_traits(
                conn, {m.account_id for m in member_rows} | ({envelope.account_id} if envelope.account_id
                                                            else set()))
            # The ticket's own account (ingest mapped it explicitly) is the one being asked about.
            candidates = [Membership(envelope.account_id,
                                     segment_of(traits.get(envelope.account_id, {}), self._tiers),
                                     solved_at)] if envelope.account_id else [
                Membership(m.account_id, segment_of(traits.get(m.account_id, {}), self._tiers), m.joined_at)
                for m in member_rows]
            for definition in definitions:
                chosen = audience_account(definition.audience, contact.role if contact else None,
                                          candidates)
                if isinstance(chosen, Skip):
                    skipped.append(chosen)
                    continue
                outcome = await try_invite(conn, definition=definition, email=email,
                                           user_id=contact.user_id if contact else envelope.user_id,
                                           account_id=chosen, ticket_id=ticket.ticket_id, now=now,
                                           timing=self._timing)
                if isinstance(outcome, Skip):
                    skipped.append(outcome)
                else:
                    created.append(outcome)

        def count() -> None:
            if created:
                INVITATIONS_CREATED.labels(Trigger.TICKET_SOLVED.value).inc(len(created))
            for reason in skipped:
                INVITATIONS_SKIPPED.labels(reason).inc()
            if created or skipped:
                log.info("ticket_surveys", invited=len(created), skipped=len(skipped))

        result.after_commit.append(count)
        if created:
            result.after_commit.append(self._on_new_invitations)
