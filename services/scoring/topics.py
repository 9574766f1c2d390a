"""Scoring's own topic (overrides), co-partitioning checks, and input-topic retention.

Scoring keeps an account's state on the instance that owns partition *i* of every input
topic, which holds only if every input topic has the same number of partitions (and the
producers key by account id, as ingest and surveys do). Starting with mismatched topics
would silently split accounts across instances, so it is refused.
"""

from __future__ import annotations

from contextlib import suppress

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.scoring.overrides import override_topic
from services.scoring.topic_config import set_topic_configs
from shared.settings import Settings
from shared.topics import Topics

log = structlog.get_logger(__name__)


class TopicsMisconfigured(RuntimeError):
    pass


def input_topics(settings: Settings) -> list[str]:
    topics = Topics.from_settings(settings)
    return [
        topics.usage,
        topics.traits,
        topics.tickets,
        topics.survey_responses,
        override_topic(settings.topic_prefix),
    ]


async def prepare_topics(settings: Settings) -> None:
    """Create the overrides topic, check co-partitioning, apply the configured retention."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        overrides = override_topic(settings.topic_prefix)
        if overrides not in set(await admin.list_topics()):
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name=overrides,
                            num_partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor,
                        )
                    ]
                )
        wanted = input_topics(settings)
        described = await admin.describe_topics(wanted)
        counts = {
            t.get("topic") or t.get("name"): len(t["partitions"]) for t in described if t.get("partitions")
        }
        if len(set(counts.values())) > 1:
            raise TopicsMisconfigured(
                f"scoring's input topics must have the same partition count (co-partitioned by "
                f"account id); found {counts}"
            )
        if settings.scoring_input_retention_days > 0:
            # Kafka is scoring's event store: `churnwatch replay` re-reads what it retains. Only
            # retention is set, and only where it differs: the topics' other configs (an
            # operator's min.insync.replicas) stay as they are.
            retention = str(int(settings.scoring_input_retention_days * 86_400_000))
            changed = await set_topic_configs(admin, {topic: {"retention.ms": retention} for topic in wanted})
            if changed:
                log.info("topic_configs_set", changed=changed)
    finally:
        await admin.close()
