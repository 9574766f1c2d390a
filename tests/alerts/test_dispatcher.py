"""The outbox dispatcher against a real PostgreSQL: leases, fencing, SKIP LOCKED, giving up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import store
from services.alerts.dispatcher import Dispatcher
from services.alerts.routing import Channel, Target
from shared.db import create_engine, migrate, session_factory
from shared.events import RiskSignalPayload, Severity
from shared.settings import Settings
from tests.alerts.receivers import SlackReceiver
from tests.support.infra import Infra

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
async def slack_settings(infra: Infra, slack: SlackReceiver) -> Settings:
    settings = infra.fresh_settings(slack_webhook_url=slack.url, delivery_max_attempts=3)
    await migrate(settings)
    return settings


@pytest.fixture
async def sessions(slack_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(slack_settings)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def dispatcher(
    slack_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(slack_settings, sessions)
    await dispatcher.start()
    yield dispatcher
    await dispatcher.close()


async def queue_slack_alerts(sessions: async_sessionmaker[AsyncSession], count: int) -> list[int]:
    """Alerts with one pending Slack delivery each, as the consumer would write them."""
    async with sessions() as session, session.begin():
        created = await store.insert_new_alerts(session, [
            store.NewAlert(
                dedupe_key=f"acme:usage_drop:{i}", account_id="acme", signal_type="usage_drop",
                severity="high", summary=f"Usage fell ({i})", signal_event_id=f"e{i}",
                signal=RiskSignalPayload(signal_type="usage_drop", severity=Severity.HIGH,
                                         dedupe_key=f"acme:usage_drop:{i}",
                                         summary=f"Usage fell ({i})").model_dump(mode="json"),
                occurred_at=T0,
            ) for i in range(count)
        ])
        await store.insert_deliveries(session, [(a, Target(Channel.SLACK, "#cs")) for a in created.values()])
    async with sessions() as session:
        return list((await session.execute(
            select(store.alert_deliveries.c.id).order_by(store.alert_deliveries.c.id))).scalars())


async def set_delivery(sessions: async_sessionmaker[AsyncSession], delivery_id: int, **values: Any) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(store.alert_deliveries)
                              .where(store.alert_deliveries.c.id == delivery_id).values(**values))


async def delivery(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> dict[str, Any]:
    async with sessions() as session:
        row = (await session.execute(select(store.alert_deliveries)
                                     .where(store.alert_deliveries.c.id == delivery_id))).mappings().one()
        return dict(row)


async def test_delivery_stuck_sending_is_reclaimed_after_its_lease(
    sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, slack: SlackReceiver
) -> None:
    [stuck, in_flight] = await queue_slack_alerts(sessions, 2)
    # A crashed process left `stuck` mid-send with an expired lease; `in_flight` is another
    # process's, still leased.
    await set_delivery(sessions, stuck, status="sending", attempts=1,
                       next_attempt_at=datetime(2020, 1, 1, tzinfo=UTC))
    await set_delivery(sessions, in_flight, status="sending", attempts=1,
                       next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC))

    assert await dispatcher.run_once() == 1
    assert [p.body["text"].split(" — ")[0] for p in slack.posts] == ["acme: Usage fell (0)"]
    row = await delivery(sessions, stuck)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("sent", 2, 200)
    assert (await delivery(sessions, in_flight))["status"] == "sending"  # not touched


async def test_a_late_result_cannot_overwrite_a_newer_claim(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [only] = await queue_slack_alerts(sessions, 1)
    async with sessions() as session, session.begin():
        [first] = await store.claim_due(session, limit=5, lease_seconds=0.0, max_attempts=3)
    async with sessions() as session, session.begin():  # the lease (0 s) has run out
        [second] = await store.claim_due(session, limit=5, lease_seconds=60.0, max_attempts=3)
    assert (first.id, first.attempts, second.id, second.attempts) == (only, 1, only, 2)

    async with sessions() as session, session.begin():
        assert await store.complete_delivery(session, first, status="failed", status_code=400,
                                             response="stale") is None
        assert await store.complete_delivery(session, second, status="sent", status_code=200,
                                             response="ok") is not None
    row = await delivery(sessions, only)
    assert (row["status"], row["last_response"]) == ("sent", "ok")


async def test_concurrent_claims_take_disjoint_rows(sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await queue_slack_alerts(sessions, 3)
    async with sessions() as one, one.begin():
        first = await store.claim_due(one, limit=2, lease_seconds=60, max_attempts=3)
        # `one` still holds its row locks: a second dispatcher skips them instead of waiting.
        async with sessions() as two, two.begin():
            second = await store.claim_due(two, limit=2, lease_seconds=60, max_attempts=3)
    assert sorted(d.id for d in first + second) == ids
    assert not {d.id for d in first} & {d.id for d in second}


async def test_last_attempt_lost_in_a_crash_is_failed_not_resent(
    sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, slack: SlackReceiver
) -> None:
    [exhausted] = await queue_slack_alerts(sessions, 1)
    await set_delivery(sessions, exhausted, status="sending", attempts=3,
                       next_attempt_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert await dispatcher.run_once() == 0
    row = await delivery(sessions, exhausted)
    assert row["status"] == "failed"
    assert "outcome is unknown" in row["last_response"]
    assert slack.posts == []


async def test_transient_errors_retry_until_max_attempts(
    sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, slack: SlackReceiver
) -> None:
    [flaky] = await queue_slack_alerts(sessions, 1)
    slack.answer("server_error", times=3)
    for attempt in (1, 2, 3):
        await set_delivery(sessions, flaky, next_attempt_at=datetime(2020, 1, 1, tzinfo=UTC))
        assert await dispatcher.run_once() == 1
        row = await delivery(sessions, flaky)
        assert (row["attempts"], row["last_status_code"]) == (attempt, 500)
        assert row["status"] == ("pending" if attempt < 3 else "failed")
    assert row["last_response"].startswith("gave up after 3 attempts")
    assert [p.status for p in slack.posts] == [500, 500, 500]
