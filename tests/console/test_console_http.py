"""The console over HTTP, as a browser without JavaScript would use it: sign-in with CSRF and a
rate limit, cookie flags, my book, an account page, the book boundary, sign-out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import httpx

from tests.console.conftest import BOB, JANE, LEAD, PASSWORD, ConsoleStack


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


@contextmanager
def signed_in(stack: ConsoleStack, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url) as client:
        form = client.get("/sign-in")
        answer = client.post("/sign-in", data={"csrf": csrf_of(form.text), "next": "/book", "email": email,
                                               "password": password})
        assert answer.status_code == 303 and answer.headers["location"] == "/book", answer.text
        yield client


def test_sign_in_sets_a_guarded_cookie_and_shows_my_book_only(console_stack: ConsoleStack) -> None:
    with httpx.Client(base_url=console_stack.url) as anonymous:
        away = anonymous.get("/book")
        assert (away.status_code, away.headers["location"]) == (303, "/sign-in?next=%2Fbook")
        form = anonymous.get("/sign-in")
        assert "script-src" not in form.headers["content-security-policy"]  # default-src 'none': no script
        answer = anonymous.post("/sign-in", data={"csrf": csrf_of(form.text), "next": "/book",
                                                  "email": JANE.upper(), "password": PASSWORD})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("cw_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http here; https in CHURNWATCH_CONSOLE_PUBLIC_URL adds it
        book = anonymous.get("/book")
    assert book.status_code == 200
    accounts = re.findall(r'<tr data-account="([^"]+)">', book.text)
    assert accounts == ["acme", "globex"]  # Jane's two, riskiest first; never Bob's Initech
    assert "Acme &lt;Corp&gt;" in book.text and "<Corp>" not in book.text  # escaped
    assert "4,200" in book.text and "2027-02-01" in book.text
    acme_row = book.text.split('data-account="acme"')[1].split("</tr>")[0]
    assert "band-red" in acme_row and "detractor" in acme_row.lower()  # its open alert


def test_band_filter_and_bad_band(console_stack: ConsoleStack) -> None:
    with signed_in(console_stack, JANE) as jane:
        red = jane.get("/book", params={"band": "red"})
        assert re.findall(r'<tr data-account="([^"]+)">', red.text) == ["acme"]
        bad = jane.get("/book", params={"band": "purple"})
        assert bad.status_code == 400 and "band must be one of red, yellow, green" in bad.text


def test_account_page_for_its_csm_and_a_lead_and_403_for_another_csm(console_stack: ConsoleStack) -> None:
    with signed_in(console_stack, JANE) as jane:
        page = jane.get("/accounts/acme")
        assert page.status_code == 200
        assert '<svg class="chart" id="score-chart"' in page.text and "<circle" in page.text
        assert 'id="top-factors"' in page.text and 'id="open-alerts"' in page.text
        refused = jane.get("/accounts/initech")
        assert refused.status_code == 403 and "another CSM" in refused.text
        assert "Initech" not in refused.text  # nothing of the account shown
        assert jane.get(f"/accounts/{quote('no such', safe='')}").status_code == 403
    with signed_in(console_stack, LEAD) as lead:
        book = lead.get("/book")
        assert sorted(re.findall(r'<tr data-account="([^"]+)">', book.text)) == ["acme", "globex", "initech"]
        assert BOB in book.text
        assert lead.get("/accounts/initech").status_code == 200


def test_csrf_wrong_password_rate_limit_and_sign_out(console_stack: ConsoleStack) -> None:
    with httpx.Client(base_url=console_stack.url) as client:
        form = client.get("/sign-in")
        no_token = client.post("/sign-in", data={"email": BOB, "password": PASSWORD})
        assert no_token.status_code == 403 and "cw_session" not in no_token.headers.get("set-cookie", "")
        forged = client.post("/sign-in", data={"csrf": "forged", "email": BOB, "password": PASSWORD})
        assert forged.status_code == 403
        attempts = []
        for _ in range(4):  # the stack allows 3 failures per email
            csrf = csrf_of(form.text)
            form = client.post("/sign-in", data={"csrf": csrf, "email": BOB, "password": "wrong password!"})
            attempts.append(form.status_code)
        assert attempts == [401, 401, 401, 429] and "Retry-After" in form.headers
        assert "Wrong email or password" not in form.text and "Too many failed sign-ins" in form.text
        # Even the right password waits out the window: guessing gets no faster.
        right = client.post("/sign-in", data={"csrf": csrf_of(form.text), "email": BOB, "password": PASSWORD})
        assert right.status_code == 429
    with signed_in(console_stack, JANE) as jane:
        page = jane.get("/book")
        assert jane.post("/sign-out", data={"csrf": "forged"}).status_code == 403
        assert jane.get("/book").status_code == 200  # still signed in: nothing changed
        out = jane.post("/sign-out", data={"csrf": csrf_of(page.text)})
        assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
        session_cookie = [c for c in jane.cookies.jar if c.name == "cw_session"]
        assert session_cookie == []
    with signed_in(console_stack, JANE) as again:
        stolen = again.cookies["cw_session"]
        again.post("/sign-out", data={"csrf": csrf_of(again.get("/book").text)})
    with httpx.Client(base_url=console_stack.url, cookies={"cw_session": stolen}) as replay:
        ended = replay.get("/book")  # the old cookie no longer opens anything
        assert ended.status_code == 303 and "expired=1" in ended.headers["location"]
