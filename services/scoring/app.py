"""The scoring service's application: the consumer that keeps health scores, and the API."""

from __future__ import annotations

import gc

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from fastapi import FastAPI

from services.scoring.api import build_router
from services.scoring.config import load_scorecard
from services.scoring.consumer import ScoringHandler, snapshot_every
from services.scoring.model_watch import ModelWatch
from services.scoring.overrides import override_topic
from services.scoring.topics import input_topics, prepare_topics
from shared.events import EventType
from shared.service import ServiceParts, Wiring, service_app
from shared.settings import Settings

SERVICE = "scoring"
GROUP_ID = "churnwatch-scoring"
GC_THRESHOLDS = (50_000, 20, 100)


def _wire(parts: ServiceParts) -> Wiring:
    settings = parts.settings
    # Validated now: a bad scorecard stops the service at start with the file and field named.
    card = load_scorecard(settings.scoring_scorecard_path)
    models = ModelWatch(parts.engine, settings.scoring_model_poll_seconds)
    handler = ScoringHandler(
        card, settings.scoring_lateness_seconds, snapshot_every(settings.scoring_snapshot_every_days), models
    )
    consumer = parts.consumer(
        GROUP_ID,
        input_topics(settings),
        handler,
        max_batch=settings.scoring_consumer_max_batch,
        # Partition i of every input topic to the same instance: an account's state lives there.
        assignors=[RangePartitionAssignor],
        on_assigned=handler.partitions_assigned,
        on_revoked=handler.partitions_revoked,
        # An account's topics are read in step on event time, so a backlog on one topic does
        # not make another topic's events late (half the lateness bound of slack).
        align_event_time=settings.scoring_lateness_seconds / 2,
        # Outputs leave only once their batch is durable: re-reading after a crash may batch
        # and interleave topics differently and need not raise the same transient signals.
        transactional_outbox=True,
        # Scoring's own topic: only overrides belong there (the shared topics are known).
        topic_types={override_topic(settings.topic_prefix): [EventType.HEALTH_OVERRIDE]},
    )

    async def on_start() -> None:
        await prepare_topics(settings)
        # The active model before the first batch: refused ones are logged, the scorecard serves.
        await models.refresh()
        # Scoring holds every owned account's model in memory (many small lists and dicts) and
        # allocates a few per event: with the default thresholds the collector re-walks that
        # heap every few thousand events (about a quarter of the CPU, measured). Its objects
        # rarely form cycles, so collect far less often; start-up's objects never again.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    return Wiring(
        routers=[build_router(parts.engine, settings, parts.publisher, card, models.status)],
        loops=[consumer, models],
        kafka_ready=lambda: consumer.running,
        on_start=on_start,
    )


def create_app(settings: Settings) -> FastAPI:
    return service_app(SERVICE, "Churnwatch scoring", settings, _wire)
