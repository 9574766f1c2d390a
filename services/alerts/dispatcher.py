"""The outbox dispatcher: sends the deliveries the consumer queued, until each is sent or failed.

One pass:
  1. claim (commit): up to `batch_size` due rows, `FOR UPDATE SKIP LOCKED`, become 'sending'
     with `attempts + 1` and a lease (`next_attempt_at = now() + lease`);
  2. send each one (outside any transaction, so no row lock is held while the network is slow);
  3. record (commit, one row at a time): 'sent', a retry time, or 'failed'.

Several dispatchers (processes) can run at once: SKIP LOCKED gives each its own rows.

At-least-once in one narrow window: if a process dies after Slack or the SMTP server
accepted a message but before step 3 committed, the row stays 'sending'; when its lease
expires another pass claims it and sends again. Neither an incoming webhook nor SMTP
takes an idempotency key, so nothing on our side can tell "sent, not recorded" from
"never sent"; resending is the choice that never loses an alert. Emails carry a
Message-ID stable per delivery so mail clients can fold such a copy. Completing a row is
fenced on its attempt number, so a slow attempt that outlived its lease cannot overwrite
the newer attempt's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

import httpx
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import store
from services.alerts.delivery_policy import Outcome, Verdict, decide
from services.alerts.messages import (
    AlertView,
    build_email,
    message_id,
    render_email,
    render_slack,
)
from services.alerts.metrics import DELIVERIES, DELIVERY_LATENCY, DELIVERY_QUEUE, LOST_LEASES
from services.alerts.routing import SLACK_WEBHOOK_CHANNEL, Channel
from services.alerts.senders import EmailSender, SlackSender
from shared.events import RiskSignalPayload, utcnow
from shared.metrics import ERRORS
from shared.settings import Settings

log = structlog.get_logger(__name__)

SERVICE = "alerts"


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        lease_seconds: float = 60.0,
        send_timeout: float = 10.0,
        batch_size: int = 5,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        # Slack posts go one at a time (one webhook, ~1 message/s), so a whole claimed batch
        # must finish well inside the lease or another process would take rows still in flight.
        if batch_size * send_timeout >= lease_seconds:
            raise ValueError("lease_seconds must exceed batch_size * send_timeout")
        self._settings = settings
        self._sessions = sessions
        self._lease = lease_seconds
        self._send_timeout = send_timeout
        self._batch_size = batch_size
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slack_turn = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None
        self.running = False

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._send_timeout,
                                         headers={"User-Agent": "churnwatch-alerts"})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """New deliveries were committed: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the pass in flight (its sends are bounded by `send_timeout`), then return."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        self.running = True
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    handled = await self.run_once()
                except Exception as exc:
                    # The database may be away for a while; keep trying rather than die.
                    ERRORS.labels(SERVICE, "dispatch").inc()
                    log.error("dispatch_pass_failed", error=repr(exc))
                    handled = 0
                if handled >= self._batch_size:
                    continue  # more may be due right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.delivery_poll_seconds)
        finally:
            self.running = False

    # --- one pass ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim, send and record one batch of due deliveries; returns how many were claimed."""
        max_attempts = self._settings.delivery_max_attempts
        async with self._sessions() as session, session.begin():
            exhausted = await store.fail_exhausted(session, max_attempts=max_attempts)
            claimed = await store.claim_due(session, limit=self._batch_size,
                                            lease_seconds=self._lease, max_attempts=max_attempts)
        for channel in exhausted:
            DELIVERIES.labels(channel, "failed", "lease_expired").inc()
        if claimed:
            async with self._sessions() as session:
                alerts = await store.load_alerts(session, (d.alert_id for d in claimed))
            await asyncio.gather(*(self._deliver(d, alerts.get(d.alert_id)) for d in claimed))
        await self._refresh_queue_depth()
        return len(claimed)

    async def _deliver(self, delivery: store.ClaimedDelivery, alert: store.AlertRecord | None) -> None:
        try:
            outcome = await self._attempt(delivery, alert)
        except Exception as exc:
            # A bug in rendering or sending must not lose the delivery: retry it later.
            ERRORS.labels(SERVICE, "delivery").inc()
            log.exception("delivery_attempt_crashed", delivery_id=delivery.id)
            outcome = Outcome(Verdict.RETRY, "error", None, repr(exc)[:1000])
        decision = decide(outcome, delivery.attempts, self._settings.delivery_max_attempts,
                          self._jitter())
        response = outcome.response
        if decision.reason == "max_attempts":
            response = f"gave up after {delivery.attempts} attempts; last: {response}"[:1000]
        try:
            async with self._sessions() as session, session.begin():
                stamp = await store.complete_delivery(
                    session, delivery, status=decision.status, status_code=outcome.status_code,
                    response=response, delay_seconds=decision.delay_seconds,
                )
        except Exception as exc:
            # Unrecorded: the lease will expire and the delivery be claimed again.
            ERRORS.labels(SERVICE, "delivery_record").inc()
            log.error("delivery_not_recorded", delivery_id=delivery.id, error=repr(exc))
            return
        if stamp is None:
            LOST_LEASES.labels(delivery.channel).inc()
            log.warning("delivery_lease_lost", delivery_id=delivery.id, attempts=delivery.attempts)
            return
        DELIVERIES.labels(delivery.channel, decision.outcome, decision.reason).inc()
        log.info("delivery_attempted", delivery_id=delivery.id, alert_id=delivery.alert_id,
                 channel=delivery.channel, attempt=delivery.attempts, outcome=decision.outcome,
                 reason=decision.reason, status_code=outcome.status_code)
        if decision.status == "sent" and alert is not None:
            DELIVERY_LATENCY.labels(delivery.channel).observe(
                max((stamp - alert.created_at).total_seconds(), 0.0)
            )

    async def _attempt(self, delivery: store.ClaimedDelivery, alert: store.AlertRecord | None) -> Outcome:
        if alert is None:
            return Outcome(Verdict.FAILED, "alert_missing", None, "the alert row is gone")
        try:
            signal = RiskSignalPayload.model_validate(alert.signal)
        except ValidationError as exc:
            return Outcome(Verdict.FAILED, "render_error", None, str(exc)[:1000])
        public_url = self._settings.public_url
        if delivery.channel == Channel.SLACK:
            channel = None if delivery.recipient == SLACK_WEBHOOK_CHANNEL else delivery.recipient
            view = _view(alert, signal, channel)
            assert self._client is not None, "start() the dispatcher first"
            sender = SlackSender(self._settings.slack_webhook_url, self._client, self._send_timeout)
            async with self._slack_turn:
                return await sender.send(render_slack(view, public_url))
        if delivery.channel == Channel.EMAIL:
            sender_address = self._settings.email_from
            message = build_email(
                render_email(_view(alert, signal, None), public_url),
                sender=sender_address, recipient=delivery.recipient,
                message_id=message_id(alert.id, delivery.id, sender_address), date=utcnow(),
            )
            return await EmailSender(self._settings, self._send_timeout).send(message)
        return Outcome(Verdict.FAILED, "unknown_channel", None, f"no sender for {delivery.channel!r}")

    async def _refresh_queue_depth(self) -> None:
        async with self._sessions() as session:
            depth = await store.queue_depth(session)
        for channel in Channel:
            DELIVERY_QUEUE.labels(channel.value).set(depth.get(channel.value, 0))


def _view(alert: store.AlertRecord, signal: RiskSignalPayload, slack_channel: str | None) -> AlertView:
    return AlertView(
        alert_id=alert.id,
        account_id=alert.account_id,
        account_name=alert.account_name,
        signal=signal,
        occurred_at=alert.occurred_at,
        slack_channel=slack_channel,
    )
