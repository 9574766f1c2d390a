"""Scoring sets its input topics' retention incrementally, on the real broker: an operator's own
topic configs survive every restart, and nothing is altered when nothing differs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.scoring.topic_config import differing, set_topic_configs, topic_configs
from services.scoring.topics import input_topics, prepare_topics
from shared.settings import Settings
from shared.topics import ensure_topics

DAY_MS = 86_400_000


def test_only_the_entries_that_differ_are_changed() -> None:
    current = {"a": {"retention.ms": "100", "min.insync.replicas": "2"}, "b": {"retention.ms": "5"}}
    wanted = {"a": {"retention.ms": "100"}, "b": {"retention.ms": "100"}, "c": {"retention.ms": "100"}}
    assert differing(current, wanted) == {"b": {"retention.ms": "100"}, "c": {"retention.ms": "100"}}


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_an_operators_topic_config_survives_a_restart_and_a_retention_change(
        settings: Settings, admin: AIOKafkaAdminClient) -> None:
    await ensure_topics(settings)
    await prepare_topics(settings)
    topics = input_topics(settings)
    usage = topics[0]
    retention = str(int(settings.scoring_input_retention_days * DAY_MS))
    assert {t: c["retention.ms"] for t, c in (await topic_configs(admin, topics)).items()} == {
        t: retention for t in topics}

    # The operator's own settings, as kafka-configs.sh --alter --add-config leaves them.
    operator = {"min.insync.replicas": "2", "max.message.bytes": "2097152"}
    assert await set_topic_configs(admin, {usage: operator}) == {usage: operator}

    await prepare_topics(settings)  # a restart: nothing differs, nothing is altered
    assert await set_topic_configs(admin, {t: {"retention.ms": retention} for t in topics}) == {}
    kept = (await topic_configs(admin, [usage]))[usage]
    assert {name: kept[name] for name in operator} == operator

    longer = settings.model_copy(update={"scoring_input_retention_days": 500.0})
    await prepare_topics(longer)  # a new retention: set, and only it
    after = await topic_configs(admin, topics)
    assert {t: c["retention.ms"] for t, c in after.items()} == {t: str(500 * DAY_MS) for t in topics}
    assert {name: after[usage][name] for name in operator} == operator

    # The legacy AlterConfigs this replaces would have wiped them: shown on the same broker.
    await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, usage, {"retention.ms": retention})])
    wiped = (await topic_configs(admin, [usage]))[usage]
    assert wiped["min.insync.replicas"] == "1" and wiped["max.message.bytes"] != operator["max.message.bytes"]
