"""The relationship-survey scheduler: every CHURNWATCH_SURVEY_SCHEDULE_SECONDS, queue the
invitations that active relationship surveys owe their audience.

One pass (`run_once(now)`, the clock injected so tests never sleep): for each active
relationship definition, for each contact with an email and an account, pick the account
they would answer for (audience: accounts, segments, roles), then `try_invite` under the
person's lock, which applies unsubscribes, the quiet period and the cadence. At most
CHURNWATCH_SURVEY_MAX_INVITATIONS_PER_RUN invitations a pass, so a new survey over a large
audience is spread over several passes instead of mailing everyone in one burst.
Each invitation commits on its own; the sender loop mails them.

The pass reads every reachable contact into memory: fine for tens of thousands of
contacts; beyond that it wants paging (noted in the README).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys import campaign_store, contact_store
from services.surveys.definitions import Status, Trigger
from services.surveys.eligibility import Membership, Skip, audience_account
from services.surveys.inviting import Timing, try_invite
from services.surveys.metrics import INVITATIONS_CREATED
from services.surveys.segments import ArrTier, segment_of
from shared.metrics import ERRORS
from shared.settings import Settings

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]


@dataclass
class PassReport:
    created: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class Scheduler:
    def __init__(self, settings: Settings, engine: AsyncEngine, clock: Clock,
                 tiers: list[ArrTier]) -> None:
        self._settings = settings
        self._engine = engine
        self._clock = clock
        self._tiers = tiers
        self._timing = Timing(quiet_period=timedelta(days=settings.survey_quiet_period_days),
                              link_ttl=timedelta(days=settings.survey_link_ttl_days))
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                report = await self.run_once()
                if report.created or report.skipped:
                    log.info("survey_schedule_pass", invited=len(report.created),
                             skipped=dict(report.skipped))
            except Exception as exc:
                ERRORS.labels("surveys", "schedule").inc()
                log.error("survey_schedule_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.survey_schedule_seconds)

    async def run_once(self, now: datetime | None = None) -> PassReport:
        now = now or self._clock()
        report = PassReport()
        budget = self._settings.survey_max_invitations_per_run
        async with self._engine.connect() as conn:
            definitions = await campaign_store.list_definitions(
                conn, trigger=Trigger.RELATIONSHIP, status=Status.ACTIVE)
            if not definitions:
                return report
            contacts = await contact_store.reachable_contacts(conn)
            memberships = await contact_store.memberships_of(conn, {c.user_id for c in contacts})
            traits = await contact_store.account_traits(
                conn, {m.account_id for rows in memberships.values() for m in rows})
            emails = {c.email for c in contacts if c.email}
            unsubscribed = await campaign_store.unsubscribed_among(conn, emails)
            # Cheap pre-filter; try_invite re-checks everything under the person's lock.
            quiet = await campaign_store.recently_invited(conn, emails, now - self._timing.quiet_period)
        segments = {account: segment_of(t, self._tiers) for account, t in traits.items()}
        unknown = segment_of({}, self._tiers)  # an account whose traits never arrived
        for definition in definitions:
            for contact in contacts:
                if len(report.created) >= budget or self._stopping.is_set():
                    return report
                assert contact.email is not None
                if contact.email in unsubscribed:
                    report.skipped[Skip.UNSUBSCRIBED] += 1
                    continue
                if contact.email in quiet:
                    report.skipped[Skip.QUIET_PERIOD] += 1
                    continue
                chosen = audience_account(definition.audience, contact.role, [
                    Membership(m.account_id, segments.get(m.account_id, unknown), m.joined_at)
                    for m in memberships.get(contact.user_id, [])])
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
                quiet.add(contact.email)
                INVITATIONS_CREATED.labels(Trigger.RELATIONSHIP.value).inc()
        return report
