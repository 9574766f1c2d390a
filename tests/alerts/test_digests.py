"""Daily digests for a recipient no channel reaches any more, on a real PostgreSQL and a real
SMTP server: sent to the routing fallback, or, without one, kept (not dropped) and counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.alerts.delivery.dispatcher import Dispatcher
from services.alerts.lifecycle.scheduler import Scheduler
from services.alerts.links import LinkSigner
from services.alerts.routing.config import RoutingConfig, parse_routing
from services.alerts.store import digests as digest_store
from services.alerts.store import signal_ledger
from services.alerts.store import tables as alert_tables
from shared.db import create_engine, migrate, session_factory
from shared.events import Severity
from shared.settings import Settings
from tests.alerts.clock import ManualClock
from tests.alerts.receivers import SmtpReceiver
from tests.alerts.support import insert_open_alert
from tests.support.infra import Infra
from tests.support.waiting import metric

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NEXT_MORNING = T0.replace(day=21, hour=9, minute=5)
# Sam wanted digests on Slack only, by DM; this deployment no longer has a Slack bot token or
# webhook, so nothing reaches Sam.
SLACK_ONLY = [{"channel": "slack", "address": "U0SAM0001"}]


@dataclass
class Db:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def db(infra: Infra, smtp: SmtpReceiver) -> AsyncIterator[Db]:
    settings = infra.fresh_settings(
        slack_bot_token=None,
        slack_webhook_url=None,
        alert_default_email=None,
        smtp_port=smtp.port,
        email_from="churnwatch@example.com",
    )
    await migrate(settings)
    engine = create_engine(settings)
    yield Db(settings, engine, session_factory(engine))
    await engine.dispose()




async def add_items(db: Db, recipient: str, targets: list[dict[str, str]], count: int) -> None:
    async with db.sessions() as session, session.begin():
        for i in range(count):
            alert_id, signal = await insert_open_alert(
                session, account_id=f"small-{i}", dedupe_key=f"small-{i}:usage:1",
                severity=Severity.MEDIUM, summary=f"usage down {20 + i}%", event_id=f"e{i}", at=T0,
                segment="low_touch")
            signal_id = await signal_ledger.record_signal(
                session,
                {
                    "dedupe_key": signal.dedupe_key,
                    "alert_id": alert_id,
                    "account_id": f"small-{i}",
                    "signal_type": "usage_decline",
                    "status": "raised",
                    "severity": "medium",
                    "event_id": f"e{i}",
                    "occurred_at": T0,
                    "received_at": T0,
                    "signal": signal.model_dump(mode="json"),
                    "outcome": "open:new",
                },
            )
            assert signal_id is not None
            await digest_store.insert_digest_items(
                session,
                [
                    {
                        "recipient": recipient,
                        "alert_id": alert_id,
                        "signal_id": signal_id,
                        "reason": "digest",
                        "targets": targets,
                        "timezone": "UTC",
                        "digest_time": "09:00",
                        "added_at": T0,
                    }
                ],
            )


async def pending(db: Db, recipient: str) -> int:
    async with db.sessions() as session:
        return int(
            (
                await session.execute(
                    select(func.count()).where(
                        alert_tables.alert_digest_items.c.recipient == recipient,
                        alert_tables.alert_digest_items.c.digest_id.is_(None),
                    )
                )
            ).scalar_one()
        )


async def digest_deliveries(db: Db) -> list[dict[str, Any]]:
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(alert_tables.alert_deliveries)
                .where(alert_tables.alert_deliveries.c.purpose == "digest")
            )
        ).mappings()
        return [dict(r) for r in rows]


def scheduler(db: Db, config: RoutingConfig, clock: ManualClock) -> Scheduler:
    return Scheduler(db.settings, db.sessions, config, clock, lambda: None)


async def test_an_unreachable_recipients_digest_goes_to_the_fallback(
    db: Db, smtp: SmtpReceiver
) -> None:
    config = parse_routing(
        {
            "defaults": {"timezone": "UTC"},
            "fallback": {"email": "cs-team@example.com"},
            "segments": [
                {"name": "low_touch", "match": {"max_mrr": 500}, "fallback": {"email": "scale@example.com"}}
            ],
        }
    )
    await add_items(db, "slack:U0SAM0001", SLACK_ONLY, 2)
    clock = ManualClock(NEXT_MORNING)
    before = metric("churnwatch_alerts_digests_unroutable_total", {"resolution": "fallback"})
    assert (await scheduler(db, config, clock).run_once())["digests"] == 1
    assert metric("churnwatch_alerts_digests_unroutable_total", {"resolution": "fallback"}) - before == 1
    assert await pending(db, "slack:U0SAM0001") == 0
    # The items' segment has its own fallback: that one, by email.
    [queued] = await digest_deliveries(db)
    assert (queued["channel"], queued["recipient"]) == ("email", "scale@example.com")
    assert queued["details"]["fallback_for"] == "slack:U0SAM0001"

    links = LinkSigner("http://alerts.test", timedelta(days=14))
    links.configure("a-test-secret-long-enough-for-hs256-0123456789")
    dispatcher = Dispatcher(db.settings, db.sessions, config, clock, links)
    await dispatcher.start()
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()
    [mail] = await smtp.wait_for_accepted(1)
    assert mail.rcpt_tos == ["scale@example.com"]
    assert mail.subject == "[Churnwatch] Daily digest 2026-11-21: 2 signals on 2 accounts"
    text = mail.part("text/plain")
    assert "For slack:U0SAM0001, who no channel reaches any more (sent to you as the fallback)." in text
    assert "usage down 20%" in text and "usage down 21%" in text


async def test_without_a_fallback_the_items_are_kept_and_counted_until_a_route_exists(
    db: Db, smtp: SmtpReceiver
) -> None:
    nowhere = parse_routing({"defaults": {"timezone": "UTC"}})
    await add_items(db, "slack:U0SAM0001", SLACK_ONLY, 3)
    clock = ManualClock(NEXT_MORNING)
    held = {"resolution": "held"}
    before = metric("churnwatch_alerts_digests_unroutable_total", held)
    ticks = scheduler(db, nowhere, clock)
    assert (await ticks.run_once())["digests"] == 0
    clock.advance(minutes=15)
    assert (await ticks.run_once())["digests"] == 0
    # Not dropped: the items wait, no digest was made; counted once for the day, not per tick.
    assert await pending(db, "slack:U0SAM0001") == 3
    assert await digest_deliveries(db) == []
    assert metric("churnwatch_alerts_digests_unroutable_total", held) - before == 1
    assert metric("churnwatch_alerts_digest_items_held") == 3
    # The next day it is still unroutable: counted again for that day.
    clock.advance(days=1)
    assert (await ticks.run_once())["digests"] == 0
    assert metric("churnwatch_alerts_digests_unroutable_total", held) - before == 2

    # Once a fallback is configured, the kept items go out in one digest.
    fixed = parse_routing({"defaults": {"timezone": "UTC"}, "fallback": {"email": "cs-team@example.com"}})
    assert (await scheduler(db, fixed, clock).run_once())["digests"] == 1
    assert await pending(db, "slack:U0SAM0001") == 0
    assert metric("churnwatch_alerts_digest_items_held") == 0
    [queued] = await digest_deliveries(db)
    assert (queued["recipient"], queued["details"]["items"]) == ("cs-team@example.com", 3)
