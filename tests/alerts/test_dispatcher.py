"""The outbox dispatcher against a real PostgreSQL: leases, fencing, SKIP LOCKED, giving up,
in-doubt attempts, pacing and cancellation. Time is a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.delivery.dispatcher import Dispatcher
from services.alerts.delivery.outbox import AttemptRecord, NewDelivery, Purpose
from services.alerts.links import LinkSigner
from services.alerts.routing.config import RoutingConfig
from services.alerts.store import deliveries as delivery_store
from services.alerts.store import tables as alert_tables
from shared.db import create_engine, migrate, session_factory
from shared.events import Severity
from shared.settings import Settings
from tests.alerts.clock import ManualClock
from tests.alerts.receivers import SlackReceiver
from tests.alerts.support import insert_open_alert
from tests.support.infra import Infra

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


async def make(
    settings: Settings, clock: ManualClock
) -> tuple[Dispatcher, async_sessionmaker[AsyncSession], Any]:
    await migrate(settings)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    links = LinkSigner("http://alerts.test", timedelta(days=14))
    links.configure("a-test-secret-long-enough-for-hs256-0123456789")
    dispatcher = Dispatcher(settings, sessions, RoutingConfig(), clock, links)
    await dispatcher.start()
    return dispatcher, sessions, engine


@pytest.fixture
async def webhook(
    infra: Infra, slack: SlackReceiver, clock: ManualClock
) -> AsyncIterator[tuple[Dispatcher, async_sessionmaker[AsyncSession]]]:
    settings = infra.fresh_settings(
        slack_webhook_url=slack.url, delivery_max_attempts=3, slack_min_interval_seconds=0
    )
    dispatcher, sessions, engine = await make(settings, clock)
    yield dispatcher, sessions
    await dispatcher.close()
    await engine.dispose()


@pytest.fixture
async def web_api(
    infra: Infra, slack: SlackReceiver, clock: ManualClock
) -> AsyncIterator[tuple[Dispatcher, async_sessionmaker[AsyncSession]]]:
    settings = infra.fresh_settings(
        slack_bot_token=slack.token,
        slack_api_base_url=slack.api_url,
        delivery_max_attempts=3,
        slack_min_interval_seconds=1,
    )
    dispatcher, sessions, engine = await make(settings, clock)
    yield dispatcher, sessions
    await dispatcher.close()
    await engine.dispose()


async def queue(sessions: async_sessionmaker[AsyncSession], count: int, channel: str = "#cs") -> list[int]:
    """Alerts with one pending Slack delivery each, as the consumer would write them."""
    async with sessions() as session, session.begin():
        for i in range(count):
            alert_id, _ = await insert_open_alert(
                session, account_id=f"acme-{i}", dedupe_key=f"acme:usage:{i}",
                severity=Severity.HIGH, summary=f"Usage fell ({i})", event_id=f"e{i}", at=T0)
            await delivery_store.insert_deliveries(
                session,
                [
                    NewDelivery(
                        f"alert:{alert_id}:alert:1:slack:{channel}",
                        Purpose.ALERT,
                        "slack",
                        channel,
                        T0,
                        T0,
                        alert_id=alert_id,
                    )
                ],
            )
    async with sessions() as session:
        ids = select(alert_tables.alert_deliveries.c.id).order_by("id")
        return list((await session.execute(ids)).scalars())


async def set_delivery(sessions: async_sessionmaker[AsyncSession], delivery_id: int, **values: Any) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(alert_tables.alert_deliveries)
            .where(alert_tables.alert_deliveries.c.id == delivery_id)
            .values(**values)
        )


async def delivery(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> dict[str, Any]:
    async with sessions() as session:
        row = (
            (
                await session.execute(
                    select(alert_tables.alert_deliveries)
                    .where(alert_tables.alert_deliveries.c.id == delivery_id)
                )
            )
            .mappings()
            .one()
        )
        return dict(row)


async def test_delivery_stuck_sending_is_reclaimed_after_its_lease(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver
) -> None:
    dispatcher, sessions = webhook
    [stuck, in_flight, never_started] = await queue(sessions, 3)
    # A crashed process left `stuck` mid-send (started) and `never_started` claimed only; both
    # leases ran out. `in_flight` is another process's, still leased.
    await set_delivery(sessions, stuck, status="sending", attempts=1, send_started_at=T0, next_attempt_at=T0)
    await set_delivery(sessions, never_started, status="sending", attempts=1, next_attempt_at=T0)
    await set_delivery(
        sessions, in_flight, status="sending", attempts=1, next_attempt_at=T0 + timedelta(hours=1)
    )

    assert await dispatcher.run_once() == 2
    texts = sorted(p.body["text"] for p in slack.posts)
    # Only the one whose previous attempt had started is sent as a possible repeat.
    assert texts[0].startswith("acme-0: Usage fell (0)") and "may already have seen" in texts[0]
    assert texts[1] == "acme-2: Usage fell (2)"
    for row in (await delivery(sessions, stuck), await delivery(sessions, never_started)):
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("sent", 2, 200)
    assert (await delivery(sessions, in_flight))["status"] == "sending"  # not touched


async def test_a_late_result_cannot_overwrite_a_newer_claim(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [only] = await queue(sessions, 1)
    [first] = await dispatcher.claim(5)
    clock.advance(seconds=61)  # the first claim's lease (60 s) runs out
    [second] = await dispatcher.claim(5)
    assert (first.id, first.attempts, second.id, second.attempts) == (only, 1, only, 2)
    async with sessions() as session, session.begin():
        assert not await delivery_store.complete_delivery(session, only, first.attempts, status="failed")
        assert await delivery_store.complete_delivery(
            session, only, second.attempts, status="sent", last_response="ok"
        )
    assert (await delivery(sessions, only))["status"] == "sent"


async def test_concurrent_claims_take_disjoint_rows(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]],
) -> None:
    _, sessions = webhook
    ids = await queue(sessions, 3)
    async with sessions() as one, one.begin():
        first = await delivery_store.due_deliveries(one, now=T0, limit=2, max_attempts=3)
        # `one` still holds its row locks: a second dispatcher skips them instead of waiting.
        async with sessions() as two, two.begin():
            second = await delivery_store.due_deliveries(two, now=T0, limit=2, max_attempts=3)
    assert sorted(d["id"] for d in first + second) == ids


async def test_last_attempt_lost_in_a_crash_is_failed_not_resent(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver
) -> None:
    dispatcher, sessions = webhook
    [exhausted] = await queue(sessions, 1)
    await set_delivery(sessions, exhausted, status="sending", attempts=3, next_attempt_at=T0)
    assert await dispatcher.run_once() == 0
    row = await delivery(sessions, exhausted)
    assert row["status"] == "failed" and "outcome is unknown" in row["last_response"]
    assert slack.posts == []


async def test_transient_errors_retry_with_backoff_until_max_attempts(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [flaky] = await queue(sessions, 1)
    slack.answer("server_error", times=3)
    for attempt in (1, 2, 3):
        assert await dispatcher.run_once() == 1
        row = await delivery(sessions, flaky)
        assert (row["attempts"], row["last_status_code"]) == (attempt, 500)
        assert row["status"] == ("pending" if attempt < 3 else "failed")
        if attempt < 3:
            assert await dispatcher.run_once() == 0  # not before its backoff
            clock.set(row["next_attempt_at"])
    assert row["last_response"].startswith("gave up after 3 attempts")
    assert [p.status for p in slack.posts] == [500, 500, 500]


async def test_a_slack_5xx_is_an_ordinary_retry_not_an_in_doubt_repeat(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [refused] = await queue(sessions, 1)
    slack.answer("server_error")
    assert await dispatcher.run_once() == 1
    row = await delivery(sessions, refused)
    assert (row["status"], row["last_status_code"], row["in_doubt"]) == ("pending", 500, False)
    clock.set(row["next_attempt_at"])
    assert await dispatcher.run_once() == 1
    row = await delivery(sessions, refused)
    assert (row["status"], row["attempts"], row["in_doubt"]) == ("sent", 2, False)
    # Slack said it did not post the first one: the retry is not marked as a possible repeat.
    assert [(p.status, p.body["text"]) for p in slack.posts] == [
        (500, "acme-0: Usage fell (0)"),
        (200, "acme-0: Usage fell (0)"),
    ]


async def test_a_5xx_after_an_in_doubt_attempt_keeps_the_doubt(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [cut] = await queue(sessions, 1)
    # Attempt 1 stopped after it started sending (Slack may have it); attempt 2 is refused.
    await set_delivery(
        sessions, cut, status="sending", attempts=1, claimed_at=T0, send_started_at=T0, next_attempt_at=T0
    )
    slack.answer("server_error")
    assert await dispatcher.run_once() == 1
    row = await delivery(sessions, cut)
    assert (row["status"], row["last_status_code"], row["in_doubt"]) == ("pending", 500, True)
    clock.set(row["next_attempt_at"])
    assert await dispatcher.run_once() == 1
    assert (await delivery(sessions, cut))["status"] == "sent"
    # The 500 said nothing about attempt 1: the copy that went out is still marked.
    assert [(p.status, "may already have seen" in p.body["text"]) for p in slack.posts] == [
        (500, True),
        (200, True),
    ]
    log = [(a["attempt"], a["outcome"], a["in_doubt"]) for a in await attempt_log(sessions, cut)]
    assert log == [(1, "interrupted", True), (2, "retry", False), (3, "sent", False)]


async def test_a_doubt_the_history_settled_is_not_revived_by_a_5xx(
    web_api: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = web_api
    [cut] = await queue(sessions, 1, channel="C0CSTEAM1")
    await set_delivery(
        sessions, cut, status="sending", attempts=1, claimed_at=T0, send_started_at=T0, next_attempt_at=T0
    )
    slack.answer("server_error")
    assert await dispatcher.run_once() == 1  # history: not there; posted; refused
    row = await delivery(sessions, cut)
    assert (row["status"], row["in_doubt"]) == ("pending", False)
    clock.set(row["next_attempt_at"])
    assert await dispatcher.run_once() == 1
    assert [m for m, _ in slack.api_calls] == [
        "conversations.history",
        "chat.postMessage",
        "chat.postMessage",
    ]
    [message] = slack.messages
    assert "may already have seen" not in message.text


async def test_a_web_api_5xx_is_retried_without_searching_the_history(
    web_api: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = web_api
    [refused] = await queue(sessions, 1, channel="C0CSTEAM1")
    slack.answer("server_error")
    assert await dispatcher.run_once() == 1
    row = await delivery(sessions, refused)
    assert (row["status"], row["last_status_code"], row["in_doubt"]) == ("pending", 500, False)
    clock.set(row["next_attempt_at"])
    assert await dispatcher.run_once() == 1
    assert (await delivery(sessions, refused))["status"] == "sent"
    assert [method for method, _ in slack.api_calls] == ["chat.postMessage", "chat.postMessage"]
    [message] = slack.messages
    assert "may already have seen" not in message.text


async def attempt_log(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(alert_tables.alert_delivery_attempts)
                .where(alert_tables.alert_delivery_attempts.c.delivery_id == delivery_id)
                .order_by(alert_tables.alert_delivery_attempts.c.attempt)
            )
        ).mappings()
        return [dict(r) for r in rows]


async def test_every_attempt_is_logged_with_its_result(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [flaky, crashed, exhausted] = await queue(sessions, 3)
    # `crashed`: a process claimed it and started sending, then died; `exhausted` likewise on
    # its last attempt, before sending. `flaky` is due later.
    await set_delivery(
        sessions, crashed, status="sending", attempts=1, claimed_at=T0, send_started_at=T0, next_attempt_at=T0
    )
    await set_delivery(sessions, exhausted, status="sending", attempts=3, claimed_at=T0, next_attempt_at=T0)
    await set_delivery(sessions, flaky, next_attempt_at=T0 + timedelta(hours=1))
    assert await dispatcher.run_once() == 1
    clock.set(T0 + timedelta(hours=1))
    slack.answer("server_error")
    assert await dispatcher.run_once() == 1
    retry_at = (await delivery(sessions, flaky))["next_attempt_at"]
    clock.set(retry_at)
    assert await dispatcher.run_once() == 1

    def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (r["attempt"], r["outcome"], r["reason"], r["status_code"], r["response"], r["in_doubt"])
            for r in rows
        ]

    crashed_log = await attempt_log(sessions, crashed)
    assert summary(crashed_log)[1:] == [(2, "sent", "ok", 200, "ok", False)]
    [(attempt, outcome, reason, code, response, in_doubt)] = summary(crashed_log)[:1]
    assert (attempt, outcome, reason, code, in_doubt) == (1, "interrupted", "lease_expired", None, True)
    assert "the receiver may have the message" in response
    assert (crashed_log[0]["claimed_at"], crashed_log[0]["started_at"], crashed_log[0]["finished_at"]) == (
        T0,
        T0,
        T0,
    )
    [(attempt, outcome, reason, code, response, in_doubt)] = summary(await attempt_log(sessions, exhausted))
    assert (attempt, outcome, reason, code, in_doubt) == (3, "interrupted", "lease_expired", None, False)
    assert "before sending anything" in response

    flaky_log = await attempt_log(sessions, flaky)
    assert summary(flaky_log) == [
        (1, "retry", "http_500", 500, "rollup_error", False),
        (2, "sent", "ok", 200, "ok", False),
    ]
    first, second = flaky_log
    assert first["claimed_at"] == first["started_at"] == first["finished_at"] == T0 + timedelta(hours=1)
    assert second["claimed_at"] == second["finished_at"] == retry_at


async def test_a_late_result_writes_no_attempt(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [only] = await queue(sessions, 1)
    [first] = await dispatcher.claim(5)
    clock.advance(seconds=61)
    [_second] = await dispatcher.claim(5)
    async with sessions() as session, session.begin():
        assert not await delivery_store.complete_delivery(
            session,
            only,
            first.attempts,
            AttemptRecord(only, first.attempts, T0, None, clock.now(), "failed", "http_404"),
            status="failed",
        )
    # The second claim logged the first as interrupted; the first's late result changed nothing.
    assert [(r["attempt"], r["outcome"]) for r in await attempt_log(sessions, only)] == [(1, "interrupted")]


async def test_permanent_failures_are_not_retried(
    webhook: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver, clock: ManualClock
) -> None:
    dispatcher, sessions = webhook
    [gone, bad] = await queue(sessions, 2)
    slack.answer("channel_not_found")
    slack.answer("invalid_payload")
    assert await dispatcher.run_once() == 2
    clock.advance(days=1)
    assert await dispatcher.run_once() == 0
    rows = [await delivery(sessions, gone), await delivery(sessions, bad)]
    assert sorted((r["status"], r["attempts"], r["last_status_code"], r["last_response"]) for r in rows) == [
        ("failed", 1, 400, "invalid_payload"),
        ("failed", 1, 404, "channel_not_found"),
    ]


async def test_in_doubt_web_api_send_is_verified_in_history_not_repeated(
    web_api: tuple[Dispatcher, async_sessionmaker[AsyncSession]], slack: SlackReceiver
) -> None:
    dispatcher, sessions = web_api
    [landed, lost] = await queue(sessions, 2, channel="C0CSTEAM1")
    # Two attempts that stopped after starting: one of them had reached Slack.
    [claim, _] = await dispatcher.claim(5)
    async with sessions() as session, session.begin():
        for d in (landed, lost):
            await delivery_store.mark_started(session, d, 1, T0)
    slack._store(
        "C0CSTEAM1",
        {
            "text": "x",
            "metadata": {
                "event_type": "churnwatch_delivery",
                "event_payload": {"delivery_key": claim.row["delivery_key"]},
            },
        },
        None,
        False,
        0.0,
    )
    for d in (landed, lost):
        await set_delivery(sessions, d, next_attempt_at=T0)  # leases over
    assert await dispatcher.run_once() == 2
    first, second = await delivery(sessions, landed), await delivery(sessions, lost)
    assert (first["status"], first["attempts"], first["external_id"]) == ("sent", 2, slack.messages[0].ts)
    assert "not posted again" in first["last_response"]
    assert (second["status"], second["attempts"]) == ("sent", 2)
    assert [m.delivery_key for m in slack.in_channel("C0CSTEAM1")] == [
        claim.row["delivery_key"],
        second["delivery_key"],
    ]  # each exactly once
    assert not any("may already have seen" in m.text for m in slack.messages)


async def test_one_channel_is_paced_and_a_burst_waits_its_turn(
    web_api: tuple[Dispatcher, async_sessionmaker[AsyncSession]], clock: ManualClock
) -> None:
    dispatcher, sessions = web_api
    await queue(sessions, 8, channel="#cs-team")
    first = await dispatcher.claim(20)
    # One message per second per channel: only slots up to five seconds ahead are claimed now.
    assert [(c.slot - T0).total_seconds() for c in first] == [0, 1, 2, 3, 4, 5]
    assert await dispatcher.claim(20) == []  # the rest wait in the outbox
    clock.advance(seconds=6)
    later = await dispatcher.claim(20)
    assert [(c.slot - T0).total_seconds() for c in later] == [6, 7]
