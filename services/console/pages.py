"""The console's pages: sign-in and sign-out, my book, an account.

Sessions are server-side (sessions.py), in a cookie that is HttpOnly, SameSite=Lax, and Secure
when the console is served over TLS. Every form carries a CSRF token: the session's own, or
before sign-in a random one also held in a cookie (double submit). A CSM sees the accounts
whose owner (`csm_email`) is their email; a lead or admin sees every account; any other
account answers 403 and shows nothing of it.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine

from services.console.sessions import Session, end_session, read_session, start_session
from services.console.sign_in_limit import SignInLimit
from services.console.upstream import Upstream, UpstreamUnavailable
from services.console.users import authenticate, normalise_email
from services.console.views import BANDS, account_view, book_rows
from shared.http import ApiError, read_body_limited
from shared.openapi_bodies import form_body
from shared.settings import Settings

SESSION_COOKIE = "cw_session"
SIGN_IN_COOKIE = "cw_sign_in_csrf"
MAX_FORM_BYTES = 16_384
TEMPLATES = Path(__file__).parent / "templates"
# No script runs on these pages; styles come from the console itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = _money
    return env


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: only a path of this site, never another origin."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/book"


class Console:
    def __init__(self, settings: Settings, engine: AsyncEngine, upstream: Upstream) -> None:
        self.engine = engine
        self.upstream = upstream
        self.templates = environment()
        self.secure = settings.console_public_url.startswith("https://")
        self.lifetime = timedelta(hours=settings.console_session_hours)
        self.limit = SignInLimit(settings.console_sign_in_attempts)

    def page(self, template: str, status: int = 200, headers: dict[str, str] | None = None,
             **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})

    def problem(self, status: int, title: str, message: str, session: Session | None = None,
                headers: dict[str, str] | None = None) -> HTMLResponse:
        return self.page("error.html", status, headers, title=title, message=message, session=session)

    async def session_of(self, request: Request) -> Session | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        return await read_session(self.engine, session_id) if session_id else None

    def to_sign_in(self, request: Request) -> RedirectResponse:
        expired = "&expired=1" if request.cookies.get(SESSION_COOKIE) else ""
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/sign-in?next={quote(target, safe='')}{expired}", status_code=303,
                                    headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def form(self, request: Request) -> dict[str, str]:
        raw = await read_body_limited(request, MAX_FORM_BYTES)
        fields = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {key: values[0] for key, values in fields.items()}

    def sign_in_form(self, next_path: str, status: int = 200, message: str | None = None,
                     email: str = "", headers: dict[str, str] | None = None) -> HTMLResponse:
        csrf = secrets.token_urlsafe(32)
        response = self.page("sign_in.html", status, headers, csrf=csrf, next=next_path, message=message,
                             email=email, session=None)
        response.set_cookie(SIGN_IN_COOKIE, csrf, httponly=True, samesite="strict", secure=self.secure,
                            path="/sign-in", max_age=3600)
        return response


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given).encode(), str(expected).encode())


def build_pages_router(console: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/book", status_code=303, headers=SECURITY_HEADERS)

    @router.get("/sign-in")
    async def sign_in_page(request: Request, next: str | None = None, expired: str | None = None) -> Response:
        if await console.session_of(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303, headers=SECURITY_HEADERS)
        message = "Your session has ended: sign in again." if expired else None
        return console.sign_in_form(safe_next(next), message=message)

    @router.post("/sign-in", openapi_extra=form_body(("email", "password", "csrf", "next"),
                                                      "The sign-in form."))
    async def sign_in(request: Request) -> Response:
        try:
            fields = await console.form(request)
        except ApiError as exc:
            return console.problem(400, "Sign-in refused", exc.message)
        next_path = safe_next(fields.get("next"))
        if not _same(fields.get("csrf"), request.cookies.get(SIGN_IN_COOKIE)):
            return console.problem(403, "Sign-in refused",
                                   "The form had expired or did not come from this page. Open the sign-in "
                                   "page again and retry.")
        email = normalise_email(fields.get("email", ""))
        password = fields.get("password", "")
        client = request.client.host if request.client else "unknown"
        wait = console.limit.retry_after(email, client)
        if wait is not None:
            message = f"Too many failed sign-ins. Try again in {wait // 60 + 1} minutes."
            return console.sign_in_form(next_path, 429, message, email, headers={"Retry-After": str(wait)})
        if not email or not password:
            return console.sign_in_form(next_path, 400, "Enter your email and your password.", email)
        user = await authenticate(console.engine, email, password)
        if user is None:
            console.limit.failed(email, client)
            return console.sign_in_form(next_path, 401, "Wrong email or password.", email)
        console.limit.succeeded(email)
        session_id, _ = await start_session(console.engine, user, console.lifetime)
        response = RedirectResponse(next_path, status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", secure=console.secure,
                            path="/", max_age=int(console.lifetime.total_seconds()))
        response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
        return response

    @router.post("/sign-out", openapi_extra=form_body(("csrf",), "The sign-out form."))
    async def sign_out(request: Request) -> Response:
        session = await console.session_of(request)
        if session is None:
            return console.to_sign_in(request)
        try:
            fields = await console.form(request)
        except ApiError as exc:
            return console.problem(400, "Sign-out refused", exc.message, session)
        if not _same(fields.get("csrf"), session.csrf_token):
            return console.problem(403, "Sign-out refused", "The form did not come from this console.",
                                   session)
        await end_session(console.engine, request.cookies[SESSION_COOKIE])
        response = RedirectResponse("/sign-in", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/book")
    async def book(request: Request, band: str | None = None) -> Response:
        session = await console.session_of(request)
        if session is None:
            return console.to_sign_in(request)
        if band is not None and band not in ("", *BANDS):
            return console.problem(400, "Unknown band",
                                   f"band must be one of {', '.join(BANDS)}; got {band!r}.", session)
        wanted = band or None
        try:
            if session.user.sees_every_account:
                scored = await console.upstream.portfolio(account_ids=None, band=wanted)
                owners = await console.upstream.owners()
            else:
                owners = await console.upstream.owners(csm_email=session.user.email)
                scored = await console.upstream.portfolio(account_ids=[o["account_id"] for o in owners],
                                                          band=wanted)
        except UpstreamUnavailable as exc:
            return console.problem(503, "Data unavailable", f"The console could not read {exc.service} "
                                   f"({exc.detail}). Retry in a moment.", session, {"Retry-After": "5"})
        rows = book_rows(scored, owners)
        unscored = 0 if session.user.sees_every_account or wanted else len(owners) - len(rows)
        return console.page("book.html", session=session, rows=rows, band=wanted, bands=BANDS,
                            unscored=unscored, everyone=session.user.sees_every_account)

    @router.get("/accounts/{account_id}")
    async def account(request: Request, account_id: str) -> Response:
        session = await console.session_of(request)
        if session is None:
            return console.to_sign_in(request)
        try:
            if not session.user.sees_every_account:
                owners = await console.upstream.owners(account_ids=[account_id])
                owner = (owners[0].get("csm_email") or "") if owners else ""
                if owner.lower() != session.user.email:
                    return console.problem(403, "Not in your book",
                                           "This account belongs to another CSM's book. Ask a CS lead if "
                                           "it should be yours.", session)
            health = await console.upstream.health(account_id)
            if health is None:
                return console.problem(404, "No health score yet",
                                       f"Scoring has no score for account {account_id!r} yet.", session)
            history = await console.upstream.history(account_id)
            alerts = await console.upstream.alerts_of(account_id)
        except UpstreamUnavailable as exc:
            return console.problem(503, "Data unavailable", f"The console could not read {exc.service} "
                                   f"({exc.detail}). Retry in a moment.", session, {"Retry-After": "5"})
        return console.page("account.html", session=session, view=account_view(health, history, alerts))

    return router
