"""The response page in a real browser: Debian's headless Chromium, driven by Selenium through
the system chromedriver, against the surveys service running as a process.

A person answers with the keyboard only, in a browser with JavaScript switched off, and lands
on the thank-you page; the page passes the accessibility basics (language, title, landmarks,
a legend for the score group, a label for every control, visible focus, WCAG AA contrast).
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from deploy.local.processes import free_port
from services.surveys.invitations.definitions import DefinitionIn
from services.surveys.invitations.links import LinkSigner, new_invitation_id
from services.surveys.store import campaigns as campaign_store
from services.surveys.store.responses import survey_responses
from shared.db import create_engine
from shared.events import utcnow
from shared.settings import Settings
from shared.topics import Topics
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess
from tests.surveys.support import LINK_SECRET

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# This machine's network is closed: nothing may try to reach the outside.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1024,900"]

AUDIT_SCRIPT = """
const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const controls = [...document.querySelectorAll('input, textarea, select, button')].filter(visible);
const unlabelled = controls.filter(el => el.tagName !== 'BUTTON' && el.labels.length === 0)
  .map(el => el.id || el.name);
const radios = [...document.querySelectorAll('input[type=radio]')];
const grouped = radios.every(r => {
  const fs = r.closest('fieldset'); const lg = fs && fs.querySelector('legend');
  return !!lg && lg.textContent.trim().length > 0;
});
const background = el => {
  for (let e = el; e; e = e.parentElement) {
    const bg = getComputedStyle(e).backgroundColor;
    if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
  }
  return 'rgb(255, 255, 255)';
};
const texts = [...document.querySelectorAll('h1, legend, label, p, span, button, a, textarea')]
  .filter(el => visible(el) && el.textContent.trim().length > 0)
  .map(el => ({tag: el.tagName, text: el.textContent.trim().slice(0, 40),
               color: getComputedStyle(el).color, background: background(el),
               size: parseFloat(getComputedStyle(el).fontSize),
               weight: parseInt(getComputedStyle(el).fontWeight, 10)}));
return {lang: document.documentElement.lang, title: document.title,
        h1: document.querySelectorAll('h1').length, main: document.querySelectorAll('main').length,
        scripts: document.scripts.length, unlabelled: unlabelled, radios: radios.length,
        grouped: grouped, texts: texts,
        describedby: document.querySelector('fieldset').getAttribute('aria-describedby')};
"""


def _rgb(css: str) -> tuple[float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)[:3]]
    return numbers[0], numbers[1], numbers[2]


def _luminance(css: str) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in _rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def browser(profile: Path, *, javascript: bool) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    service = Service(executable_path=CHROMEDRIVER, port=free_port())
    return webdriver.Chrome(service=service, options=options)


def audit_page(url: str, profile: Path, screenshot: Path) -> dict[str, Any]:
    driver = browser(profile, javascript=True)
    try:
        driver.get(url)
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.switch_to.active_element
        audit: dict[str, Any] = driver.execute_script(AUDIT_SCRIPT)
        audit["first_focus"] = focused.get_attribute("id")
        audit["focus_outline"] = driver.execute_script(
            "const s = getComputedStyle(document.activeElement);"
            "return [s.outlineStyle, parseFloat(s.outlineWidth)];")
        driver.save_screenshot(str(screenshot))
        return audit
    finally:
        driver.quit()


def answer_with_keyboard(url: str, profile: Path) -> dict[str, str]:
    driver = browser(profile, javascript=False)
    try:
        driver.get(url)
        keys = ActionChains(driver)
        keys.send_keys(Keys.TAB)  # into the score group: the first score
        keys.send_keys(Keys.SPACE)  # choose it
        keys.send_keys(*([Keys.ARROW_RIGHT] * 7))  # move the choice to 7
        keys.send_keys(Keys.TAB)  # to the comment
        keys.send_keys("Reports are great, exports are slow")
        keys.send_keys(Keys.TAB)  # to the button
        keys.send_keys(Keys.ENTER)
        keys.perform()
        WebDriverWait(driver, 15).until(lambda d: d.current_url.endswith("/thanks"))
        return {"url": driver.current_url, "h1": driver.find_element(By.TAG_NAME, "h1").text,
                "lang": driver.find_element(By.TAG_NAME, "html").get_attribute("lang") or ""}
    finally:
        driver.quit()


async def create_invitation(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            definition = await campaign_store.create_definition(conn, "sv_browser", DefinitionIn(
                name="Relationship NPS", survey_type="nps",  # type: ignore[arg-type]
                question="How likely are you to recommend Acme to a friend or colleague?",
                comment_question="What is the main reason for your score?"), utcnow())
            invitation_id = new_invitation_id()
            expires_at = utcnow() + timedelta(days=14)
            await campaign_store.create_invitation(
                conn, invitation_id=invitation_id, definition_id=definition.id, email="jane@acme.example",
                user_id="u-jane", account_id="acme", ticket_id=None, now=utcnow(), expires_at=expires_at)
        return LinkSigner(LINK_SECRET).respond_token(invitation_id, expires_at, utcnow())
    finally:
        await engine.dispose()


async def test_the_page_answered_with_the_keyboard_in_chromium(infra: Infra, tmp_path: Path) -> None:
    settings = infra.fresh_settings(survey_link_secret=LINK_SECRET)
    process = ServiceProcess("surveys", settings, free_port(), tmp_path)
    await asyncio.to_thread(process.start)
    try:
        token = await create_invitation(settings)
        url = f"{process.base_url}/s/{token}"
        audit = await asyncio.to_thread(audit_page, url, tmp_path / "profile-audit", tmp_path / "page.png")
        answered = await asyncio.to_thread(answer_with_keyboard, url, tmp_path / "profile-answer")
    finally:
        await asyncio.to_thread(process.stop)

    assert (audit["lang"], audit["h1"], audit["main"], audit["scripts"]) == ("en", 1, 1, 0)
    assert audit["title"]
    assert audit["unlabelled"] == []
    assert (audit["radios"], audit["grouped"], audit["describedby"]) == (11, True, "scale-hint")
    assert audit["first_focus"] == "score-0"
    assert audit["focus_outline"][0] == "solid" and audit["focus_outline"][1] >= 2
    low = [(t["tag"], t["text"], round(contrast(t["color"], t["background"]), 2)) for t in audit["texts"]
           if contrast(t["color"], t["background"]) < 4.5]
    assert low == [], low
    assert (tmp_path / "page.png").stat().st_size > 0

    assert answered == {"url": f"{url}/thanks", "h1": "Thank you!", "lang": "en"}
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            [row] = (await conn.execute(select(survey_responses))).all()
    finally:
        await engine.dispose()
    assert (row.score, row.comment, row.account_id, row.channel) == (
        7, "Reports are great, exports are slow", "acme", "email_invitation")
    [event] = await read_topic(settings, Topics.from_settings(settings).survey_responses)
    assert (event.account_id, event.payload["score"]) == ("acme", 7)
