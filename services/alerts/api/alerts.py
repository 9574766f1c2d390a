"""Alerts' HTTP routes: alert history, lifecycle actions, feedback, recipient preferences,
and the signed action links used from Slack and email.

Auth: the API is for CS tooling (a CRM, the console, scripts), which authenticates its
own users and says who acted (`actor`). Reads need `Authorization: Bearer <API token>` with
scope `read:alerts`, writes one with `admin` (shared/token_auth.py);
`CHURNWATCH_ALERTS_API_TOKEN`, from before API tokens, still works for both. Action links
(acknowledge, snooze, resolve, feedback) need no token: the link itself is the credential,
signed, bound to one alert, one action and the recipient it was sent to, and expiring.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.alerts.lifecycle import actions
from services.alerts.lifecycle.scheduler import refresh_false_positive_ratio
from services.alerts.links import LinkAction, LinkSigner
from services.alerts.render.pages import PAGE_HEADERS, confirm_page, error_page, result_page
from services.alerts.routing.config import RoutingConfig, looks_like_email, secret_value
from services.alerts.routing.plan import StoredPreferences, effective_preferences
from services.alerts.store import contacts as contact_store
from services.alerts.store import feedback as feedback_store
from services.alerts.store import preferences as preference_store
from services.alerts.store import read_model
from shared.account_facts import AccountFacts
from shared.api_tokens import Scope
from shared.deps import DbConnection, Now
from shared.http import ApiError, parse_json, validate_body
from shared.openapi_bodies import form_body, json_body
from shared.settings import Settings
from shared.signed_links import LinkError, LinkProblem
from shared.token_auth import StaticToken, TokenGuard, bearer_of

# Alert ids are PostgreSQL bigints: a larger number names no alert and must not reach the query.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Recipient = Annotated[str, Path(min_length=3, max_length=254)]


class AttemptOut(BaseModel):
    attempt: int
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime
    outcome: str
    reason: str
    status_code: int | None
    response: str | None
    in_doubt: bool


class DeliveryOut(BaseModel):
    id: int
    purpose: str
    channel: str
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_response: str | None
    in_doubt: bool
    external_id: str | None  # Slack's message ts, the email's Message-ID
    external_channel: str | None = None  # the Slack channel id it landed in
    created_at: datetime
    sent_at: datetime | None
    attempt_log: list[AttemptOut]


class OccurrenceOut(BaseModel):
    dedupe_key: str
    status: str
    severity: str
    event_id: str
    occurred_at: datetime
    received_at: datetime
    outcome: str
    signal: dict[str, Any]


class ReasonOut(BaseModel):
    """One signal type raised in the alert's episode; `signal` is its newest occurrence."""

    signal_type: str
    kind: str
    severity: str
    summary: str
    state: str
    occurrences: int
    first_signal_at: datetime
    last_signal_at: datetime
    clearing_since: datetime | None
    cleared_at: datetime | None
    updated_at: datetime
    signal: dict[str, Any]


class ActionOut(BaseModel):
    action: str
    actor: str
    via: str
    details: dict[str, Any]
    at: datetime


class FeedbackOut(BaseModel):
    actor: str
    useful: bool
    comment: str | None
    at: datetime


class AlertOut(BaseModel):
    id: int
    account_id: str
    signal_type: str
    kind: str
    severity: str
    segment: str | None
    summary: str
    state: str
    dedupe_key: str
    signal_event_id: str
    signal: dict[str, Any]
    occurrences: int
    occurred_at: datetime
    opened_at: datetime
    last_signal_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    snoozed_until: datetime | None
    snooze_reason: str | None
    snoozed_by: str | None
    resolved_at: datetime | None
    resolved_reason: str | None
    resolved_by: str | None
    clearing_since: datetime | None
    escalate_at: datetime | None
    escalated_at: datetime | None
    reopened_count: int
    updated_at: datetime | None
    reasons: list[ReasonOut]  # active ones worst first (severity, then the newest), then cleared
    signals: list[OccurrenceOut]
    deliveries: list[DeliveryOut]
    actions: list[ActionOut]
    feedback: list[FeedbackOut]

    @classmethod
    def of(cls, row: dict[str, Any]) -> AlertOut:
        return cls.model_validate(row)


class AccountAlertsOut(BaseModel):
    account_id: str
    alerts: list[AlertOut]


class ActorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str = Field(min_length=1, max_length=200, description="who did it (an email or a name)")


class SnoozeIn(ActorIn):
    until: AwareDatetime | None = None
    hours: float | None = Field(default=None, gt=0, le=2160)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_end(self) -> SnoozeIn:
        if (self.until is None) == (self.hours is None):
            raise ValueError("give exactly one of until (a time) or hours")
        return self


class ResolveIn(ActorIn):
    reason: str | None = Field(default=None, max_length=500)


class FeedbackIn(ActorIn):
    useful: bool
    comment: str | None = Field(default=None, max_length=1000)


class PreferencesIn(StoredPreferences):
    updated_by: str | None = Field(default=None, max_length=200)


class PreferencesOut(BaseModel):
    recipient: str
    stored: dict[str, Any]
    effective: dict[str, Any]
    updated_by: str | None = None
    updated_at: datetime | None = None


def alerts_api_token(settings: Settings) -> StaticToken:
    """The alerts API's own token, from before API tokens: every alerts route, reads and writes."""
    return StaticToken("CHURNWATCH_ALERTS_API_TOKEN", settings.alerts_api_token,
                       frozenset({Scope.READ_ALERTS, Scope.ADMIN}))


def build_router(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    config: RoutingConfig,
) -> APIRouter:
    router = APIRouter()
    token = secret_value(settings.alerts_api_token)

    guard = TokenGuard(engine, [alerts_api_token(settings)])

    async def authorized(request: Request) -> None:
        writes = request.method not in ("GET", "HEAD")
        if writes and token is None and bearer_of(request) is None:
            raise ApiError(
                403,
                "api_token_not_configured",
                "changing alerts through the API needs an admin API token or CHURNWATCH_ALERTS_API_TOKEN; "
                "the links in alert messages work without either",
            )
        await guard.check(request, Scope.ADMIN if writes else Scope.READ_ALERTS)

    api = APIRouter(dependencies=[Depends(authorized)])

    @api.get("/v1/accounts/{account_id}/alerts", response_model=AccountAlertsOut)
    async def account_alerts(
        account_id: Annotated[str, Path(min_length=1, max_length=200)],
        conn: DbConnection,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AccountAlertsOut:
        """The account's alerts, newest first, each with its occurrences, deliveries, actions and feedback."""
        rows = await read_model.account_history(conn, account_id, limit)
        return AccountAlertsOut(account_id=account_id, alerts=[AlertOut.of(r) for r in rows])

    @api.get("/v1/alerts/feedback")
    async def feedback_summary(conn: DbConnection) -> dict[str, Any]:
        """Per signal type: verdicts, "not useful" count and the false-positive rate."""
        rows = await feedback_store.feedback_summary(conn)
        return {
            "signal_types": [
                {**r, "false_positive_rate": round(r["not_useful"] / r["verdicts"], 4)} for r in rows
            ]
        }

    @api.get("/v1/alerts/{alert_id}", response_model=AlertOut)
    async def alert(alert_id: AlertId, conn: DbConnection) -> AlertOut:
        row = await read_model.alert_detail(conn, alert_id)
        if row is None:
            raise ApiError(404, "alert_not_found", f"there is no alert {alert_id}")
        return AlertOut.of(row)

    async def _act(alert_id: int, work: Any) -> AlertOut:
        async with sessions() as session, session.begin():
            await work(session)
        await refresh_false_positive_ratio(sessions)
        async with engine.connect() as conn:  # after the commit: the alert as it now stands
            return await alert(alert_id, conn)

    @api.post("/v1/alerts/{alert_id}/acknowledge", response_model=AlertOut, openapi_extra=json_body(ActorIn))
    async def acknowledge(alert_id: AlertId, request: Request, now: Now) -> AlertOut:
        body = validate_body(ActorIn, parse_json(await request.body()))
        return await _act(alert_id, lambda s: actions.acknowledge(s, alert_id, body.actor, "api", now))

    @api.post("/v1/alerts/{alert_id}/snooze", response_model=AlertOut, openapi_extra=json_body(SnoozeIn))
    async def snooze(alert_id: AlertId, request: Request, now: Now) -> AlertOut:
        body = validate_body(SnoozeIn, parse_json(await request.body()))
        until = body.until or now + timedelta(hours=body.hours or 0)
        return await _act(
            alert_id,
            lambda s: actions.snooze(s, alert_id, body.actor, "api", now, until=until, reason=body.reason),
        )

    @api.post("/v1/alerts/{alert_id}/resolve", response_model=AlertOut, openapi_extra=json_body(ResolveIn))
    async def resolve(alert_id: AlertId, request: Request, now: Now) -> AlertOut:
        body = validate_body(ResolveIn, parse_json(await request.body()))
        return await _act(
            alert_id, lambda s: actions.resolve_manually(s, alert_id, body.actor, "api", now, body.reason)
        )

    @api.post("/v1/alerts/{alert_id}/feedback", response_model=AlertOut, openapi_extra=json_body(FeedbackIn))
    async def feedback(alert_id: AlertId, request: Request, now: Now) -> AlertOut:
        body = validate_body(FeedbackIn, parse_json(await request.body()))
        return await _act(
            alert_id,
            lambda s: actions.feedback(
                s, alert_id, body.actor, "api", now, useful=body.useful, comment=body.comment
            ),
        )

    def _recipient(value: str) -> str:
        key = value.strip().lower()
        if not looks_like_email(key):
            raise ApiError(
                400,
                "invalid_request",
                "recipient: must be an email address",
                [{"field": "recipient", "message": "must be an email address"}],
            )
        return key

    def _prefs_out(key: str, row: dict[str, Any] | None) -> PreferencesOut:
        stored = StoredPreferences.model_validate(row["preferences"]) if row else StoredPreferences()
        effective = effective_preferences(config, stored, config.person(key))
        return PreferencesOut(
            recipient=key,
            stored=stored.model_dump(mode="json", exclude_defaults=True),
            effective={
                "channels": [c.value for c in effective.channels],
                "min_severity": effective.min_severity.value,
                "delivery": effective.delivery.value,
                "scope": effective.scope.value,
                "segments": list(effective.segments),
                "timezone": effective.timezone,
                "quiet_hours": (
                    {
                        "start": effective.quiet_hours.start.strftime("%H:%M"),
                        "end": effective.quiet_hours.end.strftime("%H:%M"),
                    }
                    if effective.quiet_hours
                    else None
                ),
                "digest_time": effective.digest_time.strftime("%H:%M"),
                "slack_user": effective.slack_user,
            },
            updated_by=row["updated_by"] if row else None,
            updated_at=row["updated_at"] if row else None,
        )

    @api.get("/v1/recipients/{recipient}/preferences", response_model=PreferencesOut)
    async def get_preferences(recipient: Recipient, conn: DbConnection) -> PreferencesOut:
        key = _recipient(recipient)
        return _prefs_out(key, await preference_store.get_preferences(conn, key))

    @api.put("/v1/recipients/{recipient}/preferences", response_model=PreferencesOut,
             openapi_extra=json_body(PreferencesIn))
    async def put_preferences(recipient: Recipient, request: Request, now: Now) -> PreferencesOut:
        key = _recipient(recipient)
        body = validate_body(PreferencesIn, parse_json(await request.body()))
        prefs = StoredPreferences.model_validate(body.model_dump(exclude={"updated_by"}, exclude_unset=True))
        async with sessions() as session, session.begin():
            await preference_store.put_preferences(session, key, prefs, body.updated_by, now)
        async with engine.connect() as conn:
            return await get_preferences(recipient, conn)

    @api.delete("/v1/recipients/{recipient}/preferences", response_model=PreferencesOut)
    async def delete_preferences(recipient: Recipient) -> PreferencesOut:
        key = _recipient(recipient)
        async with sessions() as session, session.begin():
            await preference_store.delete_preferences(session, key)
        return _prefs_out(key, None)

    router.include_router(api)
    return router


def build_link_router(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], signer: LinkSigner
) -> APIRouter:
    router = APIRouter()

    def page(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)

    async def claims_and_alert(
        token: str, now: datetime
    ) -> tuple[Any, dict[str, Any], str | None] | HTMLResponse:
        try:
            claims = signer.read(token, now)
        except LinkError as exc:
            status = 410 if exc.problem is LinkProblem.EXPIRED else 400
            return page(
                error_page(
                    "This link no longer works" if status == 410 else "This link is not valid", str(exc)
                ),
                status,
            )
        async with engine.connect() as conn:
            alert = await read_model.alert_detail(conn, claims.alert_id)
            traits = await contact_store.load_traits(conn, [alert["account_id"]]) if alert else {}
        if alert is None:
            return page(error_page("Alert not found", "This alert no longer exists."), 404)
        name = AccountFacts.from_traits(traits.get(alert["account_id"], {})).name
        return claims, alert, name

    @router.get("/v1/alert-links/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def show(token: Annotated[str, Path(max_length=2000)], now: Now) -> HTMLResponse:
        """A confirmation page: opening a link (or a mail scanner opening it) changes nothing."""
        found = await claims_and_alert(token, now)
        if isinstance(found, HTMLResponse):
            return found
        claims, alert, name = found
        return page(confirm_page(claims.action, alert, name, claims.recipient))

    @router.post("/v1/alert-links/{token}", response_class=HTMLResponse, include_in_schema=False,
                 openapi_extra=form_body(("actor",), "The alert link's confirmation form."))
    async def act(token: Annotated[str, Path(max_length=2000)], request: Request, now: Now) -> HTMLResponse:
        found = await claims_and_alert(token, now)
        if isinstance(found, HTMLResponse):
            return found
        claims, alert, name = found
        form = {
            k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")[:10_000]).items()
        }
        # Acknowledge and snooze links may be followed by a teammate (a channel's members share
        # one message), so the typed name is the actor and the link's recipient is kept beside it.
        # Feedback is one verdict per person: it is always the signed recipient's, whatever the
        # form says, so a link cannot vote as someone else or vote many times.
        actor = (form.get("actor") or claims.recipient).strip()[:200] or claims.recipient
        sent_to = {"link_recipient": claims.recipient}
        try:
            async with sessions() as session, session.begin():
                if claims.action is LinkAction.ACKNOWLEDGE:
                    await actions.acknowledge(session, alert["id"], actor, "link", now, sent_to)
                    message = "Acknowledged. Escalation is off for this alert."
                elif claims.action is LinkAction.SNOOZE:
                    reason = (form.get("reason") or "").strip()[:500]
                    try:
                        hours = float(form.get("hours") or "24")
                    except ValueError:
                        hours = -1
                    if not reason or not 0 < hours <= 2160:
                        return page(
                            error_page("Snooze needs a reason and a duration", "Go back and fill in both."),
                            400,
                        )
                    until = now + timedelta(hours=hours)
                    await actions.snooze(
                        session, alert["id"], actor, "link", now, until=until, reason=reason, extra=sent_to
                    )
                    message = f"Snoozed until {until:%Y-%m-%d %H:%M} UTC."
                elif claims.action is LinkAction.RESOLVE:
                    what_was_done = (form.get("reason") or "").strip()[:500] or None
                    await actions.resolve_manually(
                        session, alert["id"], actor, "link", now, what_was_done, extra=sent_to
                    )
                    message = "Resolved. Nobody will be reminded about it."
                else:
                    useful = form.get("useful", "no") == "yes"
                    await actions.feedback(
                        session,
                        alert["id"],
                        claims.recipient,
                        "link",
                        now,
                        useful=useful,
                        comment=(form.get("comment") or "").strip()[:1000] or None,
                    )
                    message = "Thanks: marked useful." if useful else "Thanks: marked not useful."
        except ApiError as exc:
            return page(error_page("Nothing to do", exc.message), exc.status)
        await refresh_false_positive_ratio(sessions)
        async with engine.connect() as conn:
            updated = await read_model.alert_detail(conn, alert["id"])
        return page(result_page(message, updated or alert, name))

    return router
