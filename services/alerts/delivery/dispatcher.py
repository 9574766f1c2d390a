"""The outbox dispatcher: sends what the consumer and the scheduler queued, each message once.

Per delivery, the ledger moves through three commits:
  1. claim: the row becomes 'sending' with `attempts + 1`, a send slot (pacing) and a lease
     (`next_attempt_at = slot + lease`); `FOR UPDATE SKIP LOCKED` gives each dispatcher
     process its own rows;
  2. started: `send_started_at` is set right before the network call (fenced on the attempt);
  3. result: 'sent' (with Slack's ts / the Message-ID), a retry time, 'failed' or 'cancelled',
     and the attempt's row in `alert_delivery_attempts`, in the same transaction.

A process that dies between 1 and 2 sent nothing: after the lease the row is claimed again
and sent normally. One that dies between 2 and 3 (or whose request timed out after leaving)
leaves the attempt *in doubt*: the receiver may or may not have the message. The next attempt
settles that before sending where the receiver can tell: on the Slack Web API every message
carries its delivery key as metadata, and the dispatcher looks for it in the channel (or
thread) history; found means recorded as sent, not posted again. Incoming webhooks and SMTP
cannot be asked: those are sent again (at least once), a webhook copy marked as a possible
repeat, an email under the same Message-ID so mail stores fold it.

Pacing: Slack allows about one message per second per webhook or channel. Each claim reserves
send slots in `alert_pacing` (shared by all processes) `slack_min_interval_seconds` apart and
claims only rows whose slot is near; a burst waits its turn in the outbox, nothing is dropped.
A 429 pushes that webhook's or channel's next slot past its `Retry-After`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import httpx
import structlog
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.clock import Clock
from services.alerts.delivery.outbox import AttemptRecord, Purpose
from services.alerts.delivery.policy import Outcome, Verdict, decide
from services.alerts.delivery.senders import (
    EmailSender,
    Found,
    SlackApiSender,
    SlackRoute,
    SlackRoutes,
    SlackWebhookSender,
    Transport,
    slack_web_client,
)
from services.alerts.links import LinkAction, LinkSigner
from services.alerts.metrics import (
    DELIVERIES,
    DELIVERY_LATENCY,
    DELIVERY_QUEUE,
    IN_DOUBT,
    LOST_LEASES,
)
from services.alerts.render.messages import (
    ActionLinks,
    AlertView,
    DigestAccount,
    DigestLine,
    ReasonLine,
    account_url,
    activity_line,
    build_email,
    message_id,
    render_email,
    render_email_digest,
    render_slack,
    render_slack_digest,
)
from services.alerts.render.playbook import next_step
from services.alerts.render.reasons import Reason, worst_first
from services.alerts.routing.config import RoutingConfig, secret_value
from services.alerts.store import alert_records, signal_ledger, slack_threads
from services.alerts.store import contacts as contact_store
from services.alerts.store import deliveries as delivery_store
from services.alerts.store import digests as digest_store
from services.alerts.store import pacing as pacing_store
from shared.account_facts import AccountFacts
from shared.events import RiskSignalPayload, Severity
from shared.metrics import ERRORS
from shared.runtime.polling import PollingLoop
from shared.settings import Settings

log = structlog.get_logger(__name__)

SERVICE = "alerts"
PACING_HORIZON_SLOTS = 5  # claim a webhook's or channel's rows only this many slots ahead


@dataclass
class Claim:
    row: dict[str, Any]
    attempts: int
    slot: datetime
    in_doubt: bool
    route: SlackRoute | None
    claimed_at: datetime
    started_at: datetime | None = None
    # The Web API's history showed the earlier, in-doubt attempt never landed.
    doubt_settled: bool = False

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def channel(self) -> str:
        return str(self.row["channel"])


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        config: RoutingConfig,
        clock: Clock,
        links: LinkSigner,
        *,
        batch_size: int = 20,
        max_in_flight: int = 100,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if settings.delivery_lease_seconds <= 2 * settings.delivery_timeout_seconds:
            raise ValueError(
                "CHURNWATCH_DELIVERY_LEASE_SECONDS must exceed twice "
                "CHURNWATCH_DELIVERY_TIMEOUT_SECONDS (a lease covers a history check and a send)"
            )
        self._settings = settings
        self._sessions = sessions
        self._config = config
        self._clock = clock
        self._links = links
        self._routes = SlackRoutes(settings, config)
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight
        self._jitter = jitter
        self._interval = timedelta(seconds=settings.slack_min_interval_seconds)
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._timeout = settings.delivery_timeout_seconds
        self._blocked: dict[str, datetime] = {}  # pacing key -> not before (a 429 seen here)
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._last_send: dict[str, datetime] = {}
        self._loop = PollingLoop()
        self._client: httpx.AsyncClient | None = None
        self._slack_session: aiohttp.ClientSession | None = None
        self._slack: AsyncWebClient | None = None
        self._interactive = secret_value(settings.slack_signing_secret) is not None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.running = False

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout, headers={"User-Agent": "churnwatch-alerts"})
        token = secret_value(self._settings.slack_bot_token)
        if token is not None:
            self._slack_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
            # A rate-limit wait inside one attempt must leave the lease room for a history
            # check and two sends; a longer `Retry-After` goes back to the outbox.
            max_wait = self._lease.total_seconds() - 3 * self._timeout
            self._slack = slack_web_client(
                self._slack_session, self._settings.slack_api_base_url, token, self._timeout, max_wait
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._slack_session is not None:
            await self._slack_session.close()
            self._slack_session = None
            self._slack = None

    def wake(self) -> None:
        """New deliveries were committed: look now instead of at the next poll."""
        self._loop.wake()

    def stop(self) -> None:
        """Finish the sends in flight (each bounded by the delivery timeout), then return."""
        self._loop.stop()

    async def run(self) -> None:
        self.running = True
        try:
            await self._loop.run(self._pass, self._settings.delivery_poll_seconds)
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            self.running = False

    async def _pass(self) -> bool:
        """Start sending what is due, as far as there is room; True when a whole batch was claimed
        (more may be due right now)."""
        room = self._max_in_flight - len(self._in_flight)
        claims: list[Claim] = []
        if room > 0:
            try:
                claims = await self.claim(min(room, self._batch_size))
                await self._refresh_queue_depth()
            except Exception as exc:
                # The database may be away for a while; keep trying rather than die.
                ERRORS.labels(SERVICE, "dispatch").inc()
                log.error("dispatch_pass_failed", error=repr(exc))
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(claims) >= self._batch_size

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._loop.wake()  # a pacing slot or some capacity may have freed up

    async def run_once(self) -> int:
        """Claim one batch of due deliveries and send them all; returns how many were claimed."""
        claims = await self.claim(self._batch_size)
        await asyncio.gather(*(self._deliver(c) for c in claims))
        await self._refresh_queue_depth()
        return len(claims)

    # --- claiming ---------------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Claim]:
        now = self._clock.now()
        max_attempts = self._settings.delivery_max_attempts
        async with self._sessions() as session, session.begin():
            exhausted = await delivery_store.fail_exhausted(session, now=now, max_attempts=max_attempts)
            rows = await delivery_store.due_deliveries(
                session, now=now, limit=limit, max_attempts=max_attempts
            )
            routes = {
                r["id"]: self._routes.route(r["recipient"]) if r["channel"] == "slack" else None for r in rows
            }
            next_free = await pacing_store.lock_pacing(
                session, {r.pacing_key for r in routes.values() if r}, now
            )
            horizon = now + self._interval * PACING_HORIZON_SLOTS
            claims: list[Claim] = []
            interrupted: list[AttemptRecord] = []
            for row in rows:
                route = routes[row["id"]]
                slot = now
                if route is not None and self._interval:
                    slot = max(next_free[route.pacing_key], now)
                    if slot > horizon:
                        continue  # this webhook's or channel's queue is long: its turn comes later
                    next_free[route.pacing_key] = slot + self._interval
                in_doubt = bool(row["in_doubt"]) or (
                    row["status"] == "sending" and row["send_started_at"] is not None
                )
                if row["status"] == "sending":
                    # The previous claim's lease ran out with no result: log that attempt now.
                    interrupted.append(delivery_store.interrupted(row, now))
                attempts = row["attempts"] + 1
                await delivery_store.mark_claimed(
                    session,
                    row["id"],
                    attempts=attempts,
                    now=now,
                    lease_until=slot + self._lease,
                    in_doubt=in_doubt,
                    pacing_key=route.pacing_key if route else None,
                )
                claims.append(Claim(row, attempts, slot, in_doubt, route, now))
            await delivery_store.insert_attempts(session, interrupted)
            await pacing_store.save_pacing(session, {k: v for k, v in next_free.items()})
        for channel in exhausted:
            DELIVERIES.labels(channel, "failed", "lease_expired").inc()
        return claims

    # --- one delivery -----------------------------------------------------------------------------

    async def _deliver(self, claim: Claim) -> None:
        try:
            await self._deliver_unguarded(claim)
        except Exception as exc:
            # Unrecorded: the lease will expire and the delivery be claimed again.
            ERRORS.labels(SERVICE, "delivery").inc()
            log.exception("delivery_crashed", delivery_id=claim.id, error=repr(exc))

    async def _deliver_unguarded(self, claim: Claim) -> None:
        wait = (claim.slot - self._clock.now()).total_seconds()
        if wait > 0:
            await self._clock.sleep(wait)
        now = self._clock.now()
        key = claim.route.pacing_key if claim.route else None
        blocked = self._blocked.get(key) if key else None
        if blocked is not None and blocked > now:
            # A 429 arrived for this webhook or channel since the claim: wait it out, uncounted.
            await self._record(
                claim,
                "deferred",
                "rate_limited",
                status="pending",
                attempts=claim.attempts - 1,
                next_attempt_at=blocked,
            )
            return
        context = await self._load(claim)
        cancel = _cancel_reason(claim.row, context.get("alert"))
        if cancel is not None:
            await self._record(
                claim,
                "cancelled",
                "no_longer_needed",
                status="cancelled",
                last_response=f"not sent: {cancel}",
            )
            return
        if claim.row["purpose"] == Purpose.EDIT and context.get("parent") is None:
            if context.get("first_status") == "sending":
                # Being posted right now, perhaps rendered before this change: edit it after.
                await self._record(claim, "retry", "first_message_in_flight", status="pending",
                                   next_attempt_at=self._clock.now() + timedelta(seconds=2))
                return
            await self._record(
                claim,
                "cancelled",
                "no_message_to_edit",
                status="cancelled",
                last_response="not sent: the first message is not out (it will show the alert as it is)",
            )
            return
        if key is None:
            await self._send(claim, context)
            return
        # One send at a time per webhook or channel in this process, `interval` apart from the
        # previous one's start: slots keep the rate across processes, this keeps the spacing
        # even when one send ran late.
        async with self._key_locks.setdefault(key, asyncio.Lock()):
            blocked = self._blocked.get(key)
            if blocked is not None and blocked > self._clock.now():
                await self._record(
                    claim,
                    "deferred",
                    "rate_limited",
                    status="pending",
                    attempts=claim.attempts - 1,
                    next_attempt_at=blocked,
                )
                return
            last = self._last_send.get(key)
            if last is not None:
                wait = (last + self._interval - self._clock.now()).total_seconds()
                if wait > 0:
                    await self._clock.sleep(wait)
            self._last_send[key] = self._clock.now()
            await self._send(claim, context)

    async def _send(self, claim: Claim, context: dict[str, Any]) -> None:
        claim.started_at = self._clock.now()
        async with self._sessions() as session, session.begin():
            started = await delivery_store.mark_started(session, claim.id, claim.attempts, claim.started_at)
        if not started:
            LOST_LEASES.labels(claim.channel).inc()
            return
        try:
            outcome = await self._attempt(claim, context)
        except Exception as exc:
            # A bug in rendering or sending must not lose the delivery: retry it later.
            ERRORS.labels(SERVICE, "delivery").inc()
            log.exception("delivery_attempt_crashed", delivery_id=claim.id)
            outcome = Outcome(Verdict.RETRY, "error", None, repr(exc)[:1000], in_doubt=True)
        await self._settle(claim, outcome)

    async def _settle(self, claim: Claim, outcome: Outcome) -> None:
        decision = decide(outcome, claim.attempts, self._settings.delivery_max_attempts, self._jitter())
        now = self._clock.now()
        response = outcome.response
        if decision.reason == "max_attempts":
            response = f"gave up after {claim.attempts} attempts; last: {response}"[:1000]
        values: dict[str, Any] = {
            "status": decision.status,
            "last_status_code": outcome.status_code,
            "last_response": response,
            # A doubt lasts until a send succeeds or Slack's history settles it: an attempt that
            # failed for sure (a 500, say) says nothing about whether an earlier one landed.
            "in_doubt": outcome.in_doubt or (claim.in_doubt and not claim.doubt_settled),
        }
        if decision.status == "sent":
            values.update(
                sent_at=now,
                in_doubt=False,
                external_id=outcome.external_id,
                external_channel=outcome.external_channel,
            )
        elif decision.status == "pending":
            values["next_attempt_at"] = now + timedelta(seconds=decision.delay_seconds or 0.0)
        if outcome.retry_after is not None and claim.route is not None:
            until = now + timedelta(seconds=outcome.retry_after)
            self._blocked[claim.route.pacing_key] = until
            async with self._sessions() as session, session.begin():
                await pacing_store.push_pacing(session, claim.route.pacing_key, until)
        recorded = await self._record(
            claim, decision.outcome, decision.reason, attempt_in_doubt=outcome.in_doubt, **values
        )
        if recorded and decision.status == "failed":
            # A route that cannot work (a wrong token, a channel the bot is not in): retrying
            # would not fix it, so ops must; counted in churnwatch_alerts_deliveries_total.
            log.error(
                "delivery_failed_permanently",
                delivery_id=claim.id,
                channel=claim.channel,
                recipient=claim.row["recipient"],
                reason=decision.reason,
                response=response[:300],
            )
        if recorded:
            log.info(
                "delivery_attempted",
                delivery_id=claim.id,
                purpose=claim.row["purpose"],
                channel=claim.channel,
                attempt=claim.attempts,
                outcome=decision.outcome,
                reason=decision.reason,
                status_code=outcome.status_code,
            )
            if decision.status == "sent":
                due = _due_at(claim.row)
                DELIVERY_LATENCY.labels(claim.channel).observe(max((now - due).total_seconds(), 0.0))

    async def _record(
        self, claim: Claim, outcome: str, reason: str, *, attempt_in_doubt: bool = False, **values: Any
    ) -> bool:
        """The claim's result on the delivery row and, in the same transaction, in its attempt
        log. A deferral (a 429 seen since the claim) tried nothing and gives the attempt number
        back, so it is counted in the metrics but not logged as an attempt."""
        attempt = (
            None
            if outcome == "deferred"
            else AttemptRecord(
                delivery_id=claim.id,
                attempt=claim.attempts,
                claimed_at=claim.claimed_at,
                started_at=claim.started_at,
                finished_at=self._clock.now(),
                outcome=outcome,
                reason=reason,
                status_code=values.get("last_status_code"),
                response=values.get("last_response"),
                in_doubt=attempt_in_doubt,
            )
        )
        async with self._sessions() as session, session.begin():
            done = await delivery_store.complete_delivery(
                session, claim.id, claim.attempts, attempt, **values
            )
        if not done:
            LOST_LEASES.labels(claim.channel).inc()
            log.warning("delivery_lease_lost", delivery_id=claim.id, attempts=claim.attempts)
            return False
        DELIVERIES.labels(claim.channel, outcome, reason).inc()
        return True

    # --- what to send -------------------------------------------------------------------------------

    async def _load(self, claim: Claim) -> dict[str, Any]:
        row = claim.row
        context: dict[str, Any] = {}
        async with self._sessions() as session:
            if row["alert_id"] is not None:
                alerts = await alert_records.load_alert_rows(session, [row["alert_id"]])
                alert = alerts.get(row["alert_id"])
                context["alert"] = alert
                if alert is not None:
                    context["traits"] = (await contact_store.load_traits(session, [alert["account_id"]])).get(
                        alert["account_id"], {}
                    )
                    # Rendered from the alert as it stands now: every reason that joined since
                    # this message was queued is in it.
                    context["reasons"] = await alert_records.load_reasons(session, alert["id"])
                    signal_id = (row["details"] or {}).get("signal_id")
                    if signal_id is not None:
                        occurrences = await signal_ledger.load_signal_rows(session, [signal_id])
                        context["occurrence"] = occurrences.get(signal_id)
                    if row["purpose"] == Purpose.EDIT:
                        context["parent"] = await slack_threads.thread_parent(
                            session, alert["id"], "slack", row["recipient"]
                        )
                        if context["parent"] is None:
                            context["first_status"] = await slack_threads.first_slack_status(
                                session, alert["id"], row["recipient"]
                            )
                    if row["channel"] == "slack":
                        context["action"] = await alert_records.latest_action(session, alert["id"])
                    if row["purpose"] in (Purpose.UPDATE, Purpose.REMINDER):
                        if row["channel"] == "slack":
                            context["parent"] = await slack_threads.thread_parent(
                                session, alert["id"], "slack", row["recipient"]
                            )
                        else:
                            context["first_message_id"] = await slack_threads.first_message_id(
                                session, alert["id"], row["recipient"]
                            )
            if row["digest_id"] is not None:
                context["digest"] = await digest_store.digest_contents(session, row["digest_id"])
            if claim.in_doubt and row["channel"] == "slack":
                context["known_channel"] = row["external_channel"] or await slack_threads.known_channel_id(
                    session, row["recipient"]
                )
        return context

    async def _attempt(self, claim: Claim, context: dict[str, Any]) -> Outcome:
        row = claim.row
        resent = claim.in_doubt
        if row["channel"] == "email":
            content, in_reply_to = self._email_content(row, context, resent=False)
            sender = self._settings.email_from
            message = build_email(
                content,
                sender=sender,
                recipient=row["recipient"],
                message_id=message_id(row["delivery_key"], row["id"], sender),
                date=self._clock.now(),
                in_reply_to=in_reply_to,
            )
            if claim.in_doubt:
                IN_DOUBT.labels("email", "resent").inc()
            return await EmailSender(self._settings, self._timeout).send(message)
        if row["channel"] != "slack":
            return Outcome(Verdict.FAILED, "unknown_channel", None, f"no sender for {row['channel']!r}")
        route = claim.route
        if route is None:
            return Outcome(
                Verdict.FAILED, "not_configured", None, "no Slack bot token or webhook reaches this channel"
            )
        assert self._client is not None, "start() the dispatcher first"
        if route.transport is Transport.WEBHOOK:
            if row["purpose"] == Purpose.EDIT:
                return Outcome(Verdict.FAILED, "not_supported", None, "an incoming webhook cannot edit")
            if claim.in_doubt:
                IN_DOUBT.labels("slack", "resent").inc()
            body = self._slack_body(row, context, resent=resent)
            return await SlackWebhookSender(self._client, self._timeout).send(route, body)

        assert self._slack is not None
        api = SlackApiSender(self._slack)
        parent = context.get("parent")
        if row["purpose"] == Purpose.EDIT:
            assert parent is not None
            # chat.update is idempotent: an in-doubt edit is simply made again.
            return await api.update(
                parent["external_channel"] or row["recipient"],
                parent["external_id"],
                self._slack_body(row, context, resent=False),
            )
        thread_ts = parent["external_id"] if parent else None
        channel = (parent["external_channel"] if parent and parent["external_channel"] else None) or row[
            "recipient"
        ]
        if claim.in_doubt:
            channel_id = context.get("known_channel") or await api.channel_id(row["recipient"])
            if channel_id:
                lookup = await api.find(channel_id, row["delivery_key"], row["created_at"], thread_ts)
                if lookup.found is Found.YES:
                    IN_DOUBT.labels("slack", "found").inc()
                    return Outcome(
                        Verdict.SENT,
                        "verified_in_history",
                        200,
                        "already delivered before an interruption: found in the channel's "
                        "history by its delivery key; not posted again",
                        external_id=lookup.ts,
                        external_channel=lookup.channel,
                    )
                resent = lookup.found is not Found.NO
                claim.doubt_settled = lookup.found is Found.NO
            IN_DOUBT.labels("slack", "not_found" if not resent else "resent").inc()
        body = self._slack_body(row, context, resent=resent)
        return await api.send(
            channel,
            body,
            delivery_key=row["delivery_key"],
            thread_ts=thread_ts,
            broadcast=thread_ts is not None,
        )

    def _slack_body(self, row: dict[str, Any], context: dict[str, Any], *, resent: bool) -> dict[str, Any]:
        if row["digest_id"] is not None:
            day, accounts = self._digest(context.get("digest") or [])
            return render_slack_digest(_recipient_label(row), accounts, day)
        return render_slack(self._view(row, context, resent))

    def _email_content(
        self, row: dict[str, Any], context: dict[str, Any], *, resent: bool
    ) -> tuple[Any, str | None]:
        if row["digest_id"] is not None:
            day, accounts = self._digest(context.get("digest") or [])
            return render_email_digest(_recipient_label(row), accounts, day), None
        return render_email(self._view(row, context, resent)), context.get("first_message_id")

    def _view(self, row: dict[str, Any], context: dict[str, Any], resent: bool) -> AlertView:
        alert = context["alert"]
        facts = AccountFacts.from_traits(context.get("traits") or {})
        occurrence = context.get("occurrence")
        reasons = worst_first(Reason.of(r) for r in context.get("reasons") or [])
        # A follow-up is about the occurrence that made the alert worse; any other message is
        # about the alert as it is: named after its worst reason.
        purpose = Purpose.ALERT if row["purpose"] == Purpose.EDIT else Purpose(row["purpose"])
        if occurrence is not None and (purpose == Purpose.UPDATE or not reasons):
            about, occurred_at = occurrence["signal"], occurrence["occurred_at"]
        elif reasons and reasons[0].signal is not None:
            about, occurred_at = reasons[0].signal, reasons[0].last_signal_at
        else:
            about, occurred_at = alert["signal"], alert["last_signal_at"]
        signal = RiskSignalPayload.model_validate(about)
        details = row["details"] or {}
        recipient = str(details.get("recipient_key") or row["recipient"])
        now = self._clock.now()
        links = ActionLinks(
            *(
                self._links.url(alert["id"], action, recipient, now)
                for action in (
                    LinkAction.ACKNOWLEDGE,
                    LinkAction.SNOOZE,
                    LinkAction.FEEDBACK,
                    LinkAction.RESOLVE,
                )
            )
        )
        return AlertView(
            alert_id=alert["id"],
            account_id=alert["account_id"],
            account_name=facts.name,
            signal=signal,
            occurred_at=occurred_at,
            account_url=account_url(
                self._config.links.account, self._settings.public_url, alert["account_id"]
            ),
            next_step=next_step(self._config, signal.signal_type),
            purpose=purpose,
            occurrences=alert["occurrences"],
            # Event time, like the latest occurrence's: "seen since" must not mix in processing time.
            first_seen_at=alert["occurred_at"],
            state=alert["state"],
            slack_channel=row["recipient"] if row["channel"] == "slack" else None,
            mention=row["mention"],
            links=links,
            resent=resent,
            note=details.get("note"),
            reasons=tuple(
                ReasonLine(r.severity, r.signal_type, r.summary, clearing=r.clearing_since is not None)
                for r in reasons
            ),
            interactive=self._interactive and row["channel"] == "slack" and self._slack is not None,
            activity=activity_line(context.get("action")),
            mrr=facts.mrr,
        )

    def _digest(self, rows: list[dict[str, Any]]) -> tuple[str, list[DigestAccount]]:
        accounts: dict[str, DigestAccount] = {}
        worst_type: dict[str, tuple[int, str]] = {}
        for r in rows:
            signal = RiskSignalPayload.model_validate(r["signal"])
            facts = AccountFacts.from_traits(r["traits"] or {})
            account = accounts.setdefault(
                r["account_id"],
                DigestAccount(
                    r["account_id"],
                    facts.name,
                    account_url(self._config.links.account, self._settings.public_url, r["account_id"]),
                    "",
                ),
            )
            account.lines.append(
                DigestLine(Severity(r["severity"]), signal.summary, r["occurred_at"], r["reason"], r["state"])
            )
            score = ({"low": 0, "medium": 1, "high": 2}[r["severity"]], signal.signal_type)
            if r["account_id"] not in worst_type or score[0] > worst_type[r["account_id"]][0]:
                worst_type[r["account_id"]] = score
        for account_id, account in accounts.items():
            accounts[account_id] = DigestAccount(
                account.account_id,
                account.account_name,
                account.account_url,
                next_step(self._config, worst_type[account_id][1]),
                account.lines,
            )
        day = f"{self._clock.now():%Y-%m-%d}"
        return day, list(accounts.values())

    async def _refresh_queue_depth(self) -> None:
        async with self._sessions() as session:
            depth = await delivery_store.queue_depth(session)
        for channel in ("slack", "email"):
            DELIVERY_QUEUE.labels(channel).set(depth.get(channel, 0))


def _recipient_label(row: dict[str, Any]) -> str:
    details = row["details"] or {}
    if details.get("fallback_for"):
        return f"{details['fallback_for']}, who no channel reaches any more (sent to you as the fallback)"
    return str(details.get("recipient_key") or row["recipient"])


def _due_at(row: dict[str, Any]) -> datetime:
    due = (row["details"] or {}).get("due_at")
    return datetime.fromisoformat(due) if isinstance(due, str) else row["created_at"]


def _cancel_reason(row: dict[str, Any], alert: dict[str, Any] | None) -> str | None:
    """A message that would only add noise by the time its turn comes (say, after quiet hours)."""
    if row["digest_id"] is not None or row["alert_id"] is None:
        return None
    if alert is None:
        return "the alert is gone"
    if row["purpose"] == Purpose.EDIT:
        return None  # an edit shows whatever the alert became, resolved included
    if alert["state"] == "resolved":
        return "the alert was resolved before this was sent"
    if alert["state"] in ("acknowledged", "snoozed") and row["purpose"] != Purpose.UPDATE:
        return f"the alert was {alert['state']} before this was sent"
    return None
