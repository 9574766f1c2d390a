"""The post-ticket CSAT: a solved ticket invites its requester to each active `ticket_solved` survey.

The requester is found explicitly, never guessed, in this order:
1. the ticket's user id (ingest's generic format may name it), as a contact;
2. the requester's email, when the ticket carries it (Intercom, generic): the contact with that
   email, else the address itself;
3. Zendesk's requester user id (Zendesk events carry no email): the one contact whose
   `zendesk_user_id` (identify trait or admin API) is that id.
A ticket none of these match to an email, or whose Zendesk id several contacts claim, is kept
(`survey_unmatched_tickets`) and counted; a later contact change that maps it invites it then,
if the solve is still recent (CHURNWATCH_SURVEY_TICKET_MAX_AGE_HOURS).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from services.surveys.contacts import Contact
from services.surveys.invitations.definitions import Definition, Status, Trigger
from services.surveys.invitations.eligibility import Membership, Skip, audience_account, ticket_too_old
from services.surveys.invitations.inviting import Timing, try_invite
from services.surveys.metrics import (
    INVITATIONS_CREATED,
    INVITATIONS_SKIPPED,
    UNMATCHED_TICKETS,
    UNMATCHED_TICKETS_MATCHED,
)
from services.surveys.responses.attribution import normalize_email
from services.surveys.segments import ArrTier, segment_of
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from services.surveys.store import tickets as ticket_store
from services.surveys.store.tickets import SolvedTicket

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]
# The envelope source of Zendesk's tickets (ingest's /webhooks/zendesk): only its requester ids
# are Zendesk user ids.
ZENDESK_SOURCE = "zendesk"


class Unmatched(StrEnum):
    """Why a solved ticket's requester could not be invited yet (a metric label)."""

    UNKNOWN_REQUESTER = "unknown_requester"
    AMBIGUOUS_REQUESTER = "ambiguous_requester"
    NO_EMAIL = "no_email"


@dataclass(frozen=True)
class Requester:
    contact: Contact | None
    email: str


def choose_requester(by_user: Contact | None, requester_email: str | None,
                     by_email: Collection[Contact], by_zendesk: Collection[Contact]) -> Requester | Unmatched:
    """Who to invite from what the lookups found (see the module's order). Pure.

    `by_email` is most recently updated first; `by_zendesk` is only looked at without an email.
    """
    email = normalize_email(requester_email)
    contact = by_user
    if contact is None and email is not None and by_email:
        contact = next(iter(by_email))
    if contact is None and email is None:
        if len(by_zendesk) > 1:
            return Unmatched.AMBIGUOUS_REQUESTER
        contact = next(iter(by_zendesk), None)
    address = (contact.email if contact is not None and contact.email else None) or email
    if address is None:
        return Unmatched.NO_EMAIL if contact is not None else Unmatched.UNKNOWN_REQUESTER
    return Requester(contact, address)


@dataclass
class TicketOutcome:
    """What a batch did; counted after its transaction commits."""

    created: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    kept: list[tuple[str, Unmatched]] = field(default_factory=list)  # (source, reason), new only
    matched_later: list[str] = field(default_factory=list)  # sources

    def count(self) -> None:
        if self.created:
            INVITATIONS_CREATED.labels(Trigger.TICKET_SOLVED.value).inc(len(self.created))
        for reason in self.skipped:
            INVITATIONS_SKIPPED.labels(reason).inc()
        for source, unmatched in self.kept:
            UNMATCHED_TICKETS.labels(source, unmatched.value).inc()
        for source in self.matched_later:
            UNMATCHED_TICKETS_MATCHED.labels(source).inc()
        if self.created or self.skipped or self.kept or self.matched_later:
            log.info("ticket_surveys", invited=len(self.created), skipped=len(self.skipped),
                     kept_unmatched=len(self.kept), matched_later=len(self.matched_later))


class TicketCsat:
    def __init__(self, *, clock: Clock, tiers: list[ArrTier], timing: Timing,
                 ticket_max_age: timedelta) -> None:
        self._clock = clock
        self._tiers = tiers
        self._timing = timing
        self._ticket_max_age = ticket_max_age

    async def on_solved(self, conn: AsyncConnection, tickets: list[SolvedTicket]) -> TicketOutcome:
        outcome = TicketOutcome()
        definitions = await self._definitions(conn) if tickets else []
        if not definitions:
            return outcome
        now = self._clock()
        for ticket in tickets:
            if ticket_too_old(ticket.solved_at, now=now, max_age=self._ticket_max_age):
                outcome.skipped += [Skip.TICKET_TOO_OLD] * len(definitions)
                continue
            requester = await self._requester(conn, ticket)
            if isinstance(requester, Unmatched):
                if await ticket_store.keep(conn, ticket, requester.value, now):
                    outcome.kept.append((ticket.source, requester))
                continue
            await self._invite(conn, ticket, requester, definitions, now, outcome)
        return outcome

    async def on_contacts(self, conn: AsyncConnection, *, user_ids: Collection[str],
                          zendesk_user_ids: Collection[str]) -> TicketOutcome:
        """Invite the kept tickets these (just saved) contacts now match."""
        outcome = TicketOutcome()
        if not user_ids and not zendesk_user_ids:
            return outcome
        now = self._clock()
        kept = await ticket_store.lock_kept_for(conn, user_ids=user_ids, requester_ids=zendesk_user_ids,
                                                solved_after=now - self._ticket_max_age)
        definitions = await self._definitions(conn) if kept else []
        matched = []
        for ticket in kept if definitions else []:
            requester = await self._requester(conn, ticket)
            if isinstance(requester, Unmatched):
                continue
            matched.append(ticket)
            outcome.matched_later.append(ticket.source)
            await self._invite(conn, ticket, requester, definitions, now, outcome)
        await ticket_store.forget(conn, matched)
        return outcome

    async def _definitions(self, conn: AsyncConnection) -> list[Definition]:
        return await campaign_store.list_definitions(conn, trigger=Trigger.TICKET_SOLVED,
                                                     status=Status.ACTIVE)

    async def _requester(self, conn: AsyncConnection, ticket: SolvedTicket) -> Requester | Unmatched:
        by_user = await contact_store.load_contact(conn, ticket.user_id) if ticket.user_id else None
        email = normalize_email(ticket.requester_email)
        by_email = (await contact_store.contacts_with_email(conn, email)
                    if by_user is None and email is not None else [])
        by_zendesk = (await contact_store.contacts_with_zendesk_id(conn, ticket.requester_id)
                      if by_user is None and email is None and ticket.requester_id else [])
        return choose_requester(by_user, ticket.requester_email, by_email, by_zendesk)

    async def _invite(self, conn: AsyncConnection, ticket: SolvedTicket, requester: Requester,
                      definitions: list[Definition], now: datetime, outcome: TicketOutcome) -> None:
        contact = requester.contact
        member_rows = (await contact_store.memberships_of(conn, {contact.user_id})).get(
            contact.user_id, []) if contact else []
        accounts = {m.account_id for m in member_rows} | ({ticket.account_id} if ticket.account_id else set())
        traits = await contact_store.account_traits(conn, accounts)
        # The ticket's own account (ingest mapped it explicitly) is the one being asked about.
        candidates = [Membership(ticket.account_id,
                                 segment_of(traits.get(ticket.account_id, {}), self._tiers),
                                 ticket.solved_at)] if ticket.account_id else [
            Membership(m.account_id, segment_of(traits.get(m.account_id, {}), self._tiers), m.joined_at)
            for m in member_rows]
        for definition in definitions:
            chosen = audience_account(definition.audience, contact.role if contact else None, candidates)
            if isinstance(chosen, Skip):
                outcome.skipped.append(chosen)
                continue
            invited = await try_invite(conn, definition=definition, email=requester.email,
                                       user_id=contact.user_id if contact else ticket.user_id,
                                       account_id=chosen, ticket_id=ticket.ticket_id, now=now,
                                       timing=self._timing)
            if isinstance(invited, Skip):
                outcome.skipped.append(invited)
            else:
                outcome.created.append(invited)
