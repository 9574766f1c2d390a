"""The console's pure parts: the chart's geometry, the sign-in limit, the book's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, Point, score_chart
from services.console.pages import safe_next
from services.console.sign_in_limit import PER_CLIENT_FACTOR, WINDOW_SECONDS, SignInLimit
from services.console.views import book_rows

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_the_chart_spans_the_plot_oldest_left_and_high_scores_up() -> None:
    chart = score_chart([Point(T0 + timedelta(days=10), 20.0, "red", "usage down"),
                         Point(T0, 100.0, "green", "first event"),
                         Point(T0 + timedelta(days=5), 60.0, "yellow", "a detractor")])
    assert chart is not None
    xs = [m.x for m in chart.markers]
    ys = [m.y for m in chart.markers]
    assert xs == [LEFT, (LEFT + WIDTH - RIGHT) / 2, WIDTH - RIGHT]  # ordered by time, evenly by time
    assert ys[0] == TOP and ys[2] == TOP + 0.8 * (HEIGHT - TOP - BOTTOM)  # 100 at the top
    assert chart.markers[1].title == "2026-11-06 00:00 · 60 (yellow) · a detractor"
    assert chart.line.split()[0] == f"{float(LEFT)},{float(TOP)}"
    assert [t.label for t in chart.x_ticks] == ["Nov 01", "Nov 11"]
    assert score_chart([]) is None
    [single] = score_chart([Point(T0, 150.0, "green", "clamped")]).markers  # type: ignore[union-attr]
    assert (single.x, single.y) == (LEFT + (WIDTH - LEFT - RIGHT) / 2, TOP)


def test_sign_in_limit_per_email_and_per_client_and_its_window() -> None:
    now = [0.0]
    limit = SignInLimit(2, clock=lambda: now[0])
    limit.failed("jane@x", "10.0.0.1")
    assert limit.retry_after("jane@x", "10.0.0.1") is None
    now[0] = 60.0
    limit.failed("jane@x", "10.0.0.1")
    assert limit.retry_after("jane@x", "10.0.0.1") == WINDOW_SECONDS - 60 + 1  # until the first lapses
    assert limit.retry_after("bob@x", "10.0.0.1") is None  # another person behind the same address
    now[0] = WINDOW_SECONDS + 1.0
    assert limit.retry_after("jane@x", "10.0.0.1") is None
    for i in range(2 * PER_CLIENT_FACTOR):
        limit.failed(f"user{i}@x", "10.0.0.2")
    assert limit.retry_after("new@x", "10.0.0.2") is not None  # one address guessing many emails
    limit.failed("ann@x", "10.0.0.3")
    limit.succeeded("ann@x")
    limit.failed("ann@x", "10.0.0.3")
    assert limit.retry_after("ann@x", "10.0.0.3") is None


def test_book_rows_riskiest_first_with_the_most_severe_open_alert() -> None:
    scored = [{"account_id": "b", "account_name": None, "band": "green", "score": 80.0, "renewal_date": None,
               "mrr": None, "open_signals": []},
              {"account_id": "a", "account_name": "Acme", "band": "red", "score": 20.0,
               "renewal_date": "2027-01-31", "mrr": 100.0, "open_signals": ["detractor_response"]}]
    owners = [{"account_id": "a", "account_name": "Acme", "csm_email": "jane@x",
               "open_alerts": [{"summary": "Detractor", "severity": "high"},
                               {"summary": "Usage", "severity": "low"}]},
              {"account_id": "b", "account_name": "Bee", "csm_email": "jane@x", "open_alerts": []}]
    rows = book_rows(scored, owners)
    assert [(r.account_id, r.name, r.top_alert, r.open_alerts) for r in rows] == [
        ("a", "Acme", "Detractor", 2), ("b", "Bee", None, 0)]
    assert rows[0].renewal_date is not None and rows[0].renewal_date.isoformat() == "2027-01-31"


def test_after_sign_in_only_a_path_of_this_site() -> None:
    assert safe_next("/accounts/acme?x=1") == "/accounts/acme?x=1"
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/book"
