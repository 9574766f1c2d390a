"""The console in a real browser: Debian's headless Chromium through the system chromedriver
(Selenium), against scoring, alerts and the console running as processes. A CSM signs in with
the keyboard, sees their book, opens an account and its chart, and is refused another CSM's."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.conftest import JANE, PASSWORD, ConsoleStack
from tests.surveys.test_page_browser import browser, contrast

LABELS_AND_CONTRAST = """
const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const unlabelled = [...document.querySelectorAll('input, select')]
  .filter(el => visible(el) && el.type !== 'hidden' && el.labels.length === 0).map(el => el.id || el.name);
const background = el => {
  for (let e = el; e; e = e.parentElement) {
    const bg = getComputedStyle(e).backgroundColor;
    if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
  }
  return 'rgb(255, 255, 255)';
};
const cells = [...document.querySelectorAll('h1, th, td, a, label, button, span')]
  .filter(el => visible(el) && el.textContent.trim())
  .map(el => [getComputedStyle(el).color, background(el), el.textContent.trim().slice(0, 30)]);
return {lang: document.documentElement.lang, unlabelled: unlabelled, scripts: document.scripts.length,
        colors: cells};
"""


def test_a_csm_signs_in_sees_the_book_opens_an_account_and_is_refused_another(
    console_stack: ConsoleStack, tmp_path: Path
) -> None:
    driver = browser(tmp_path / "profile", javascript=True)
    wait = WebDriverWait(driver, 20)
    try:
        driver.get(f"{console_stack.url}/book")
        wait.until(lambda d: "/sign-in" in d.current_url)
        assert driver.switch_to.active_element.get_attribute("id") == "email"  # autofocus
        driver.switch_to.active_element.send_keys(JANE, Keys.TAB, PASSWORD, Keys.ENTER)
        wait.until(lambda d: d.current_url.endswith("/book"))

        assert driver.find_element(By.TAG_NAME, "h1").text == "My book"
        assert driver.find_element(By.ID, "signed-in-as").text == f"{JANE} (csm)"
        rows = driver.find_elements(By.CSS_SELECTOR, "#book tbody tr")
        assert [r.get_attribute("data-account") for r in rows] == ["acme", "globex"]
        assert rows[0].find_element(By.CSS_SELECTOR, ".band").text == "RED"  # uppercase by CSS
        audit = driver.execute_script(LABELS_AND_CONTRAST)
        assert (audit["lang"], audit["unlabelled"], audit["scripts"]) == ("en", [], 0)
        low = [(text, round(contrast(fg, bg), 2)) for fg, bg, text in audit["colors"]
               if contrast(fg, bg) < 4.5]
        assert low == [], low  # WCAG AA for body text
        driver.save_screenshot(str(tmp_path / "book.png"))

        rows[0].find_element(By.TAG_NAME, "a").click()
        wait.until(lambda d: d.current_url.endswith("/accounts/acme"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Acme <Corp>"
        chart = driver.find_element(By.ID, "score-chart")
        assert chart.size["width"] > 300 and chart.size["height"] > 100  # drawn, not an empty box
        points = chart.find_elements(By.TAG_NAME, "circle")
        assert len(points) >= 2
        reasons = [p.find_element(By.TAG_NAME, "title").get_attribute("textContent") for p in points]
        assert all(" · " in r for r in reasons), reasons
        changes = driver.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
        assert len(changes) == len(points)
        assert driver.find_elements(By.CSS_SELECTOR, "#top-factors li")
        assert driver.find_elements(By.CSS_SELECTOR, "#open-alerts li")
        driver.save_screenshot(str(tmp_path / "account.png"))

        driver.get(f"{console_stack.url}/accounts/initech")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Not in your book"
        assert "Initech" not in driver.find_element(By.TAG_NAME, "main").text

        driver.find_element(By.CSS_SELECTOR, "form[action='/sign-out'] button").click()
        wait.until(lambda d: d.current_url.endswith("/sign-in"))
        driver.get(f"{console_stack.url}/book")
        wait.until(lambda d: "/sign-in" in d.current_url)
    finally:
        driver.quit()
