"""Consumers forget processed event ids after the dedupe window, and only their own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consumer import ConsumedEvent, DurableConsumer, HandlerResult, processed_events
from shared.db import create_engine, migrate, session_factory
from shared.publisher import EventPublisher
from shared.settings import Settings


async def nothing(_: AsyncSession, __: Sequence[ConsumedEvent]) -> HandlerResult:
    return HandlerResult()


async def test_old_ids_are_pruned_for_this_group_only(settings: Settings) -> None:
    await migrate(settings)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    async with engine.begin() as conn:
        await conn.execute(insert(processed_events).values([
            {"consumer_group": "g", "event_id": "old",
             "processed_at": func.now() - timedelta(hours=200)},
            {"consumer_group": "g", "event_id": "recent", "processed_at": func.now()},
            {"consumer_group": "other", "event_id": "old-elsewhere",
             "processed_at": func.now() - timedelta(hours=200)},
        ]))
    consumer = DurableConsumer(settings=settings, service="test", group_id="g", topics=["t"],
                               sessions=sessions, publisher=EventPublisher(settings, "test"),
                               handler=nothing)
    await consumer._prune_processed_ids()
    async with engine.connect() as conn:
        left = (await conn.execute(
            select(processed_events.c.consumer_group, processed_events.c.event_id)
            .order_by(processed_events.c.event_id))).all()
    await engine.dispose()
    assert [tuple(r) for r in left] == [("other", "old-elsewhere"), ("g", "recent")]
