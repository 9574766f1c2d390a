"""The Slack app's endpoints: `POST /v1/slack/interactions` (a button in an alert message) and
`POST /v1/slack/commands` (`/churnwatch <account>`).

Both are signed by Slack (X-Slack-Signature v0, HMAC-SHA256 of `v0:{timestamp}:{body}` with
the app's signing secret), checked with slack_sdk's SignatureVerifier on the service's clock;
an unsigned, wrongly signed or over five minutes old request gets 401 and changes nothing.
A button records its action through services/alerts/lifecycle/actions.py, the same code the signed
links and the API use, and queues an edit of the message in the same transaction, so the
channel sees who did what and when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.alerts.clock import Clock
from services.alerts.lifecycle import actions
from services.alerts.lifecycle.scheduler import refresh_false_positive_ratio
from services.alerts.metrics import SLACK_REQUESTS
from services.alerts.render.reasons import Reason, worst_first
from services.alerts.routing.config import secret_value
from services.alerts.scoring_reader import ScoringReader, ScoringUnavailable
from services.alerts.slack.command import USAGE, AccountAnswer, account_answer, ephemeral, not_found
from services.alerts.slack.edits import queue_edits
from services.alerts.slack.payloads import (
    ActionKind,
    ButtonPress,
    SlackRequestError,
    button_presses,
    slash_command,
)
from services.alerts.store import alert_records
from services.alerts.store import contacts as contact_store
from services.alerts.store.book import owned_accounts
from shared.http import ApiError
from shared.openapi_bodies import form_body
from shared.settings import Settings

log = structlog.get_logger(__name__)

MAX_AGE_SECONDS = 300  # Slack's own advice: refuse anything older, against replays
VIA = "slack"


class _ServiceClock(SlackClock):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


def build_slack_router(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    wake: Callable[[], None],
) -> APIRouter:
    router = APIRouter()
    secret = secret_value(settings.slack_signing_secret)
    verifier = SignatureVerifier(secret, clock=_ServiceClock(clock)) if secret else None
    scoring = ScoringReader(settings)

    async def verified_body(request: Request, endpoint: str) -> bytes:
        try:
            body = await _verified_body(request)
        except ApiError as exc:
            SLACK_REQUESTS.labels(endpoint, exc.code).inc()
            if exc.status == 401:
                log.warning("slack_request_refused", endpoint=endpoint, code=exc.code)
            raise
        SLACK_REQUESTS.labels(endpoint, "ok").inc()
        return body

    async def _verified_body(request: Request) -> bytes:
        if verifier is None:
            raise ApiError(404, "slack_app_off",
                           "the Slack app is off: set CHURNWATCH_SLACK_SIGNING_SECRET to its signing secret")
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not timestamp or not signature:
            raise ApiError(401, "unsigned",
                           "X-Slack-Request-Timestamp and X-Slack-Signature are required")
        try:
            age = clock.now().timestamp() - int(timestamp)
        except ValueError:
            raise ApiError(401, "bad_timestamp", "X-Slack-Request-Timestamp: not a Unix time") from None
        if abs(age) > MAX_AGE_SECONDS:
            raise ApiError(401, "stale_request",
                           f"X-Slack-Request-Timestamp: {age:.0f} s from now, over {MAX_AGE_SECONDS} s")
        if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            raise ApiError(401, "bad_signature", "X-Slack-Signature: does not match the body")
        return body

    @router.post("/v1/slack/interactions", include_in_schema=False, openapi_extra=form_body(
        ("payload",), "A Slack interaction (signed): `payload` holds the block_actions JSON."))
    async def interactions(request: Request) -> JSONResponse:
        body = await verified_body(request, "interactions")
        try:
            presses = button_presses(body)
        except SlackRequestError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from exc
        changed = False
        for press in presses:
            if press.kind is ActionKind.OPEN or press.alert_id is None:
                continue  # Slack opened the account's page itself
            changed = await _record(press) or changed
        if changed:
            wake()
        # Slack wants an answer within 3 seconds; the message is edited through the outbox.
        return JSONResponse({})

    async def _record(press: ButtonPress) -> bool:
        assert press.alert_id is not None
        actor = f"slack:{press.user_id}"
        extra: dict[str, Any] = {"slack_user": press.user_name} if press.user_name else {}
        now = clock.now()
        try:
            async with sessions() as session, session.begin():
                if press.kind is ActionKind.ACKNOWLEDGE:
                    await actions.acknowledge(session, press.alert_id, actor, VIA, now, extra)
                elif press.kind is ActionKind.SNOOZE:
                    assert press.snooze_for is not None
                    hours = press.snooze_for.total_seconds() / 3600
                    await actions.snooze(
                        session, press.alert_id, actor, VIA, now, until=now + press.snooze_for,
                        reason=f"snoozed from Slack for {hours:g} h", extra=extra,
                    )
                elif press.kind is ActionKind.RESOLVE:
                    await actions.resolve_manually(session, press.alert_id, actor, VIA, now, None, extra)
                else:
                    await actions.feedback(
                        session, press.alert_id, actor, VIA, now, useful=False, comment=None
                    )
                # actions.* queue the edit of the message in this transaction.
        except ApiError as exc:
            # Resolved already, or gone: nothing recorded; the message shows the alert as it is.
            log.info("slack_action_refused", alert_id=press.alert_id, action=press.kind.value,
                     user=press.user_id, code=exc.code)
            async with sessions() as session, session.begin():
                if await alert_records.lock_alert(session, press.alert_id) is None:
                    return False
                await queue_edits(session, press.alert_id, cause=f"{VIA}:refused", now=now)
            return True
        log.info("slack_action", alert_id=press.alert_id, action=press.kind.value, user=press.user_id)
        if press.kind is ActionKind.NOT_USEFUL:
            await refresh_false_positive_ratio(sessions)
        return True

    @router.post("/v1/slack/commands", include_in_schema=False, openapi_extra=form_body(
        ("command", "text", "user_id", "channel_id", "team_id", "response_url", "trigger_id"),
        "A Slack slash command (signed): `/churnwatch <account>`."))
    async def commands(request: Request) -> JSONResponse:
        body = await verified_body(request, "commands")
        try:
            command = slash_command(body)
        except SlackRequestError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from exc
        if not command.text:
            return JSONResponse(ephemeral(USAGE))
        async with engine.connect() as conn:
            account = await contact_store.find_account(conn, command.text)
            if account is None:
                return JSONResponse(not_found(command.text))
            owned = await owned_accounts(conn, csm_email=None, account_ids=[account["account_id"]], limit=1)
            open_alerts = owned[0]["open_alerts"] if owned else []
            alert = open_alerts[0] if open_alerts else None
            rows = await alert_records.load_reasons(conn, alert["id"]) if alert else []
            reasons = worst_first(Reason.of(r) for r in rows)
        health, problem = None, None
        try:
            health = await scoring.health(account["account_id"])
        except ScoringUnavailable as exc:
            problem = str(exc)
            log.warning("slack_command_scoring_unavailable", account_id=account["account_id"], error=problem)
        answer = AccountAnswer(
            account["account_id"], account["account_name"], health, alert, reasons, problem
        )
        return JSONResponse(account_answer(answer))

    return router
