"""The relationship-survey scheduler: every CHURNWATCH_SURVEY_SCHEDULE_SECONDS, queue the
invitations that active relationship surveys owe their audience.

One pass (`run_once(now)`, the clock injected so tests never sleep): for each active
relationship definition, for each contact with an email and an account, pick the account
they would answer for (audience: accounts, segments, roles), then `try_invite` under the
person's lock, which applies unsubscribes, the quiet period and the cadence. At most
CHURNWATCH_SURVEY_MAX_INVITATIONS_PER_RUN invitations a pass, so a new survey over a large
audience is spread over several passes instead of mailing everyone in one burst.
Each invitation commits on its own; the sender loop mails them.

Contacts are read a page at a time (keyset on (email, user_id), `page_size` rows, with their
memberships, account traits, unsubscribes and recent invitations), so a pass holds one page in
memory and no read transaction stays open while invitations are decided. The order, and so
which contacts a limited pass reaches first, is the same as reading them all at once; a contact
added during the pass behind the current key is seen on the next pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.contacts import Contact
from services.surveys.invitations.definitions import Definition, Status, Trigger
from services.surveys.invitations.eligibility import Membership, Skip, audience_account
from services.surveys.invitations.inviting import Timing, try_invite
from services.surveys.metrics import INVITATIONS_CREATED
from services.surveys.segments import ArrTier, Segment, segment_of
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from services.surveys.store.contacts import MembershipRow
from shared.metrics import ERRORS
from shared.runtime.polling import PollingLoop
from shared.settings import Settings

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]


@dataclass
class PassReport:
    created: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class Scheduler:
    def __init__(self, settings: Settings, engine: AsyncEngine, clock: Clock,
                 tiers: list[ArrTier], page_size: int = 1_000) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._page_size = page_size
        self._settings = settings
        self._engine = engine
        self._clock = clock
        self._tiers = tiers
        self._timing = Timing(quiet_period=timedelta(days=settings.survey_quiet_period_days),
                              link_ttl=timedelta(days=settings.survey_link_ttl_days))
        self._loop = PollingLoop()

    def stop(self) -> None:
        self._loop.stop()

    async def run(self) -> None:
        await self._loop.run(self._pass, self._settings.survey_schedule_seconds)

    async def _pass(self) -> bool:
        try:
            report = await self.run_once()
            if report.created or report.skipped:
                log.info("survey_schedule_pass", invited=len(report.created),
                         skipped=dict(report.skipped))
        except Exception as exc:
            ERRORS.labels("surveys", "schedule").inc()
            log.error("survey_schedule_failed", error=repr(exc))
        return False

    async def run_once(self, now: datetime | None = None) -> PassReport:
        now = now or self._clock()
        report = PassReport()
        async with self._engine.connect() as conn:
            definitions = await campaign_store.list_definitions(
                conn, trigger=Trigger.RELATIONSHIP, status=Status.ACTIVE)
        for definition in definitions:
            after: tuple[str, str] | None = None
            while True:
                page = await self._page(after, now)
                if not page.contacts:
                    break
                if not await self._invite_page(definition, page, now, report):
                    return report
                last = page.contacts[-1]
                assert last.email is not None
                after = (last.email, last.user_id)
        return report

    async def _page(self, after: tuple[str, str] | None, now: datetime) -> _Page:
        async with self._engine.connect() as conn:
            contacts = await contact_store.reachable_contacts_page(conn, after=after, limit=self._page_size)
            if not contacts:
                return _Page([], {}, {}, set(), set())
            memberships = await contact_store.memberships_of(conn, {c.user_id for c in contacts})
            traits = await contact_store.account_traits(
                conn, {m.account_id for rows in memberships.values() for m in rows})
            emails = {c.email for c in contacts if c.email}
            unsubscribed = await campaign_store.unsubscribed_among(conn, emails)
            # Cheap pre-filter; try_invite re-checks everything under the person's lock.
            quiet = await campaign_store.recently_invited(conn, emails, now - self._timing.quiet_period)
        segments = {account: segment_of(t, self._tiers) for account, t in traits.items()}
        return _Page(contacts, memberships, segments, unsubscribed, quiet)

    async def _invite_page(self, definition: Definition, page: _Page, now: datetime,
                           report: PassReport) -> bool:
        """False when the pass must end (budget spent or stopping)."""
        budget = self._settings.survey_max_invitations_per_run
        unknown = segment_of({}, self._tiers)  # an account whose traits never arrived
        for contact in page.contacts:
            if len(report.created) >= budget or self._loop.stopping:
                return False
            assert contact.email is not None
            if contact.email in page.unsubscribed:
                report.skipped[Skip.UNSUBSCRIBED] += 1
                continue
            if contact.email in page.quiet:
                report.skipped[Skip.QUIET_PERIOD] += 1
                continue
            chosen = audience_account(definition.audience, contact.role, [
                Membership(m.account_id, page.segments.get(m.account_id, unknown), m.joined_at)
                for m in page.memberships.get(contact.user_id, [])])
            if isinstance(chosen, Skip):
                report.skipped[chosen] += 1
                continue
            async with self._engine.begin() as conn:
                result = await try_invite(conn, definition=definition, email=contact.email,
                                          user_id=contact.user_id, account_id=chosen, ticket_id=None,
                                          now=now, timing=self._timing)
            if isinstance(result, Skip):
                report.skipped[result] += 1
                continue
            report.created.append(result)
            page.quiet.add(contact.email)
            INVITATIONS_CREATED.labels(Trigger.RELATIONSHIP.value).inc()
        return True


@dataclass
class _Page:
    contacts: list[Contact]
    memberships: dict[str, list[MembershipRow]]
    segments: dict[str, Segment]
    unsubscribed: set[str]
    quiet: set[str]
