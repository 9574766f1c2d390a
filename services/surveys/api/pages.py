"""The public pages respondents reach from an invitation: answer, thank you, unsubscribe.

- `GET /s/{token}` shows the question (`?score=N` preselects the score clicked in the email;
  a GET never records anything, because mail scanners follow links);
- `POST /s/{token}` (an ordinary form post, no JavaScript) records the score and comment as
  the response `invitation:<id>`, mapped to the invitation's account, marks the link used
  and publishes, all in one transaction; then 303 to the thank-you page. A link works once
  and until it expires;
- `GET /s/unsubscribe/{token}` asks to confirm; `POST` unsubscribes (also the RFC 8058
  one-click POST mail clients send from the `List-Unsubscribe` header).

Pages send no referrer (the token is in the URL), are not cached, and allow no scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.invitations.definitions import Definition
from services.surveys.invitations.links import LinkSigner
from services.surveys.metrics import PAGE_SUBMISSIONS, UNSUBSCRIBES
from services.surveys.rendering import COMMENT_MAX, render_message, render_page, scale
from services.surveys.responses.attribution import MappedBy
from services.surveys.responses.recording import ResponseRecorder, count
from services.surveys.responses.revisions import Channel, IncomingResponse
from services.surveys.store import campaigns as campaign_store
from services.surveys.store.campaigns import Invitation
from shared.http import ApiError, read_body_limited
from shared.openapi_bodies import form_body
from shared.settings import Settings
from shared.signed_links import LinkError, LinkProblem

Clock = Callable[[], datetime]
MAX_FORM_BYTES = 32_000
SOURCE = "surveys"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def not_found() -> HTMLResponse:
    return page(render_message(
        "This survey link is not valid",
        "Please check that you copied the whole link from the email."), 404)


def expired() -> HTMLResponse:
    return page(render_message(
        "This survey has closed",
        "The link in your invitation has expired, so answers are no longer collected through it.",
        "Thank you for wanting to share your view."), 410)


def already_answered(status: int = 200) -> HTMLResponse:
    return page(render_message(
        "You have already answered this survey",
        "Your answer was recorded. Thank you for taking the time."), status)


def form_fields(raw: bytes) -> dict[str, str]:
    parsed = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items() if values}


class Pages:
    def __init__(self, settings: Settings, engine: AsyncEngine, recorder: ResponseRecorder,
                 signer: LinkSigner | None, clock: Clock) -> None:
        self.settings = settings
        self.engine = engine
        self.recorder = recorder
        self.signer = signer
        self.clock = clock

    def invitation_id(self, token: str, *, check_expiry: bool = True) -> str | HTMLResponse:
        if self.signer is None:
            return not_found()
        try:
            return self.signer.read_respond_token(token, now=self.clock() if check_expiry else None)
        except LinkError as exc:
            return expired() if exc.problem is LinkProblem.EXPIRED else not_found()

    async def load(self, invitation_id: str) -> tuple[Invitation, Definition] | None:
        async with self.engine.connect() as conn:
            invitation = await campaign_store.load_invitation(conn, invitation_id)
            definition = (await campaign_store.load_definition(conn, invitation.definition_id)
                          if invitation else None)
        return None if invitation is None or definition is None else (invitation, definition)

    def form(self, token: str, invitation: Invitation, definition: Definition, *,
             selected: int | None = None, comment: str | None = None, error: str | None = None,
             status: int = 200) -> HTMLResponse:
        assert self.signer is not None
        unsubscribe_token = self.signer.unsubscribe_token(invitation.id, self.clock())
        unsubscribe = f"/s/unsubscribe/{quote(unsubscribe_token, safe='')}"
        return page(render_page(
            survey_type=definition.survey_type, question=definition.question,
            comment_question=definition.comment_question, action=f"/s/{quote(token, safe='')}",
            unsubscribe_url=unsubscribe, selected=selected, comment=comment, error=error), status)

    async def submit(self, token: str, invitation_id: str, fields: dict[str, str]) -> Response:
        loaded = await self.load(invitation_id)
        if loaded is None:
            PAGE_SUBMISSIONS.labels("not_found").inc()
            return not_found()
        invitation, definition = loaded
        valid = scale(definition.survey_type)
        raw_score = fields.get("score", "").strip()
        comment = fields.get("comment", "").strip() or None
        score = int(raw_score) if raw_score.isdigit() else None
        error = None
        if score is None or score not in valid:
            error = f"Choose a score from {valid[0]} to {valid[-1]}, then send your answer."
            score = None
        elif comment is not None and len(comment) > COMMENT_MAX:
            error = f"Your comment is {len(comment)} characters long; please keep it within {COMMENT_MAX}."
        if error is not None:
            PAGE_SUBMISSIONS.labels("invalid").inc()
            return self.form(token, invitation, definition, selected=score, comment=comment,
                             error=error, status=400)
        assert score is not None
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                locked = await campaign_store.load_invitation(conn, invitation_id, lock=True)
                assert locked is not None
                if locked.used_at is not None:
                    PAGE_SUBMISSIONS.labels("used").inc()
                    return already_answered(409)
                if locked.expires_at <= now:
                    PAGE_SUBMISSIONS.labels("expired").inc()
                    return expired()
                incoming = IncomingResponse(
                    response_id=f"invitation:{locked.id}", survey_type=definition.survey_type,
                    score=score, comment=comment, submitted_at=now, updated_at=now,
                    channel=Channel.EMAIL_INVITATION, source=SOURCE, account_id=locked.account_id,
                    user_id=locked.user_id, respondent_email=locked.email, campaign_id=definition.id,
                    invitation_id=locked.id, ticket_id=locked.ticket_id)
                decision = await self.recorder.record_in(conn, incoming, MappedBy.INVITATION)
                await campaign_store.mark_used(conn, locked.id, incoming.response_id, now)
        except ApiError as exc:
            if exc.status != 503:
                raise
            PAGE_SUBMISSIONS.labels("unavailable").inc()
            return page(render_message(
                "We could not save your answer just now",
                "Nothing was lost on your side: please go back and send it again in a minute."), 503)
        count(decision)
        PAGE_SUBMISSIONS.labels("recorded").inc()
        return RedirectResponse(f"/s/{quote(token, safe='')}/thanks", status_code=303,
                                headers=SECURITY_HEADERS)

    async def unsubscribe_target(self, token: str) -> Invitation | HTMLResponse:
        if self.signer is None:
            return not_found()
        try:
            invitation_id = self.signer.read_unsubscribe_token(token)
        except LinkError:
            return not_found()
        async with self.engine.connect() as conn:
            invitation = await campaign_store.load_invitation(conn, invitation_id)
        return invitation if invitation is not None else not_found()


def build_pages_router(pages: Pages) -> APIRouter:
    router = APIRouter(prefix="/s", include_in_schema=False)

    @router.get("/unsubscribe/{token}")
    async def confirm_unsubscribe(token: str) -> Response:
        target = await pages.unsubscribe_target(token)
        if isinstance(target, HTMLResponse):
            return target
        async with pages.engine.connect() as conn:
            if await campaign_store.is_unsubscribed(conn, target.email):
                return page(render_message("You are unsubscribed",
                                           f"{target.email} will not receive surveys from us again."))
        return page(render_message(
            "Unsubscribe from surveys?",
            f"We will stop sending surveys to {target.email}.",
            form_action=f"/s/unsubscribe/{quote(token, safe='')}", form_button="Unsubscribe"))

    @router.post("/unsubscribe/{token}", openapi_extra=form_body(
        ("List-Unsubscribe",), "The unsubscribe form, or a mail client's one-click unsubscribe (RFC 8058)."))
    async def unsubscribe(token: str, request: Request) -> Response:
        target = await pages.unsubscribe_target(token)
        if isinstance(target, HTMLResponse):
            return target
        fields = form_fields(await read_body_limited(request, MAX_FORM_BYTES))
        async with pages.engine.begin() as conn:
            new = await campaign_store.unsubscribe(conn, target.email, pages.clock(), target.id)
        if new:
            one_click = fields.get("List-Unsubscribe") == "One-Click"
            UNSUBSCRIBES.labels("one_click" if one_click else "link").inc()
        return page(render_message("You are unsubscribed",
                                   f"{target.email} will not receive surveys from us again."))

    @router.get("/{token}/thanks")
    async def thanks(token: str) -> Response:
        found = pages.invitation_id(token, check_expiry=False)
        if isinstance(found, HTMLResponse):
            return found
        loaded = await pages.load(found)
        if loaded is None:
            return not_found()
        if loaded[0].used_at is None:
            return RedirectResponse(f"/s/{quote(token, safe='')}", status_code=303, headers=SECURITY_HEADERS)
        return page(render_message("Thank you!", "Your answer has been recorded.",
                                   "It goes straight to the team that looks after your account."))

    @router.get("/{token}")
    async def respond(token: str, score: str | None = None) -> Response:
        found = pages.invitation_id(token)
        if isinstance(found, HTMLResponse):
            return found
        loaded = await pages.load(found)
        if loaded is None:
            return not_found()
        invitation, definition = loaded
        if invitation.used_at is not None:
            return already_answered()
        selected = int(score) if score is not None and score.isdigit() else None
        if selected not in scale(definition.survey_type):
            selected = None
        return pages.form(token, invitation, definition, selected=selected)

    @router.post("/{token}", openapi_extra=form_body(("score", "comment"), "The survey's answer form."))
    async def submit(token: str, request: Request) -> Response:
        found = pages.invitation_id(token)
        if isinstance(found, HTMLResponse):
            PAGE_SUBMISSIONS.labels("expired" if found.status_code == 410 else "not_found").inc()
            return found
        try:
            raw = await read_body_limited(request, MAX_FORM_BYTES)
        except ApiError:
            return page(render_message("Your answer is too long",
                                       "Please shorten your comment and send it again."), 400)
        return await pages.submit(token, found, form_fields(raw))

    return router
