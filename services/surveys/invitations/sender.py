"""The invitation sender: mails queued invitations through SMTP (aiosmtplib), from the outbox.

One pass (`run_once(now)`):
  1. claim (commit): due invitations become 'sending' with attempts + 1 and a lease,
     `FOR UPDATE SKIP LOCKED`, so several instances never take the same row;
  2. check each again (unsubscribed since it was queued, survey archived, link expired:
     cancelled, never mailed) and send it outside any transaction;
  3. record 'sent', a retry time (SMTP 4xx, network, timeout: exponential backoff), or
     'failed' (SMTP 5xx, or attempts used up), fenced on the attempt number.
A process dying after the SMTP server accepted a message but before step 3 leaves the row
'sending'; when the lease runs out it is sent again (at least once, never lost). The
Message-ID is stable per invitation, so mail clients fold such a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import aiosmtplib
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.invitations.definitions import Status
from services.surveys.invitations.links import LinkSigner
from services.surveys.metrics import INVITATION_QUEUE, INVITATION_SENDS
from services.surveys.rendering import build_invitation_email, render_invitation
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from services.surveys.store.campaigns import Invitation
from shared.account_facts import AccountFacts
from shared.metrics import ERRORS
from shared.runtime.backoff import exponential_backoff
from shared.runtime.polling import PollingLoop
from shared.settings import Settings
from shared.smtp import send_email, smtp_failure

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]
BASE_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class Attempt:
    status: str  # sent | pending (retry) | failed | cancelled
    reason: str  # a metric label
    error: str | None = None


def respond_url(settings: Settings, token: str) -> str:
    return f"{settings.surveys_public_url.rstrip('/')}/s/{quote(token, safe='')}"


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.surveys_public_url.rstrip('/')}/s/unsubscribe/{quote(token, safe='')}"


def retry_delay(attempts: int) -> timedelta:
    seconds = exponential_backoff(attempts - 1, BASE_RETRY.total_seconds(), MAX_RETRY.total_seconds())
    return timedelta(seconds=seconds)


def classify_smtp_error(exc: Exception) -> Attempt:
    """A 5xx reply is permanent (the address or message is refused); the rest may pass later."""
    failure = smtp_failure(exc)
    return Attempt("failed" if failure.permanent else "pending", failure.reason, failure.message)


class InvitationSender:
    def __init__(self, settings: Settings, engine: AsyncEngine, clock: Clock, signer: LinkSigner, *,
                 batch_size: int = 10, lease: timedelta = timedelta(minutes=5),
                 send_timeout: float = 15.0) -> None:
        if lease.total_seconds() <= batch_size * send_timeout:
            raise ValueError("the lease must outlast a whole batch of sends")
        self._settings = settings
        self._engine = engine
        self._clock = clock
        self._signer = signer
        self._batch_size = batch_size
        self._lease = lease
        self._timeout = send_timeout
        self._loop = PollingLoop()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()

    async def run(self) -> None:
        await self._loop.run(self._pass, self._settings.survey_send_poll_seconds)

    async def _pass(self) -> bool:
        """One batch; True when it was full (more may be due right now)."""
        try:
            claimed = await self.run_once()
        except Exception as exc:
            ERRORS.labels("surveys", "invitation_send").inc()
            log.error("invitation_pass_failed", error=repr(exc))
            claimed = 0
        return claimed >= self._batch_size

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim, send and record one batch; returns how many invitations were claimed."""
        now = now or self._clock()
        max_attempts = self._settings.survey_send_max_attempts
        async with self._engine.begin() as conn:
            gave_up = await campaign_store.fail_exhausted(conn, now=now, max_attempts=max_attempts)
            claimed = await campaign_store.claim_due(conn, now=now, limit=self._batch_size,
                                                     lease=self._lease, max_attempts=max_attempts)
        if gave_up:
            INVITATION_SENDS.labels("failed", "lease_expired").inc(gave_up)
        for invitation in claimed:
            await self._deliver(invitation, now)
        await self._refresh_queue_depth()
        return len(claimed)

    async def _deliver(self, invitation: Invitation, now: datetime) -> None:
        try:
            attempt = await self._attempt(invitation, now)
        except Exception as exc:
            # A bug must not lose the invitation: it is retried later.
            ERRORS.labels("surveys", "invitation_send").inc()
            log.exception("invitation_attempt_crashed", invitation_id=invitation.id)
            attempt = Attempt("pending", "error", repr(exc)[:1000])
        if attempt.status == "pending" and invitation.attempts >= self._settings.survey_send_max_attempts:
            attempt = Attempt("failed", attempt.reason,
                              f"gave up after {invitation.attempts} attempts; last: {attempt.error}")
        retry_at = now + retry_delay(invitation.attempts) if attempt.status == "pending" else None
        async with self._engine.begin() as conn:
            recorded = await campaign_store.complete(conn, invitation, status=attempt.status, now=now,
                                                     error=attempt.error, retry_at=retry_at)
        outcome = "retry" if attempt.status == "pending" else attempt.status
        if not recorded:
            log.warning("invitation_lease_lost", invitation_id=invitation.id)
            return
        INVITATION_SENDS.labels(outcome, attempt.reason).inc()
        log.info("invitation_attempted", invitation_id=invitation.id, outcome=outcome,
                 reason=attempt.reason, attempt=invitation.attempts)

    async def _attempt(self, invitation: Invitation, now: datetime) -> Attempt:
        async with self._engine.connect() as conn:
            definition = await campaign_store.load_definition(conn, invitation.definition_id)
            unsubscribed = await campaign_store.is_unsubscribed(conn, invitation.email)
            contact = (await contact_store.load_contact(conn, invitation.user_id)
                       if invitation.user_id else None)
            traits = (await contact_store.account_traits(conn, [invitation.account_id])
                      if invitation.account_id else {})
        if unsubscribed:
            return Attempt("cancelled", "unsubscribed", "unsubscribed before it was sent")
        if definition is None or definition.status is Status.ARCHIVED:
            return Attempt("cancelled", "survey_archived", "the survey was archived before it was sent")
        if invitation.expires_at <= now:
            return Attempt("cancelled", "expired", "the link expired before it could be sent")
        account_name = (AccountFacts.from_traits(traits[invitation.account_id]).name
                        if invitation.account_id in traits else None)
        token = self._signer.respond_token(invitation.id, invitation.expires_at, now)
        respond = respond_url(self._settings, token)
        unsubscribe = unsubscribe_url(self._settings, self._signer.unsubscribe_token(invitation.id, now))
        content = render_invitation(
            survey_type=definition.survey_type, question=definition.question,
            name=contact.name if contact else None, account_name=account_name,
            respond_url=respond, unsubscribe_url=unsubscribe, expires_at=invitation.expires_at)
        sender = self._settings.survey_email_from or self._settings.email_from
        message = build_invitation_email(content, sender=sender, recipient=invitation.email,
                                         invitation_id=invitation.id, unsubscribe_url=unsubscribe,
                                         date=now)
        try:
            await send_email(self._settings, message, self._timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return classify_smtp_error(exc)
        return Attempt("sent", "ok")

    async def _refresh_queue_depth(self) -> None:
        t = campaign_store.survey_invitations
        async with self._engine.connect() as conn:
            depth = (await conn.execute(select(func.count()).where(
                t.c.status.in_(("pending", "sending"))))).scalar_one()
        INVITATION_QUEUE.set(depth)
