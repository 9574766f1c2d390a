"""Topic configs set the way `kafka-configs.sh --alter --add-config` sets them: only the entries that
differ from what the topic has, through IncrementalAlterConfigs, which leaves every other entry of
the topic's dynamic config alone (an operator's `min.insync.replicas`, say).

aiokafka offers only the legacy AlterConfigs, which replaces a topic's whole dynamic config, so the
request (Kafka API key 44, version 0) is declared here with aiokafka's own protocol types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import UnknownTopicOrPartitionError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

SET = 0  # IncrementalAlterConfigs' operations: SET 0, DELETE 1, APPEND 2, SUBTRACT 3


class IncrementalAlterConfigsResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("responses", Array(
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            ("resource_type", Int8),
            ("resource_name", String("utf-8")),
        )),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):  # type: ignore[misc]
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        ("resources", Array(
            ("resource_type", Int8),
            ("resource_name", String("utf-8")),
            ("configs", Array(
                ("name", String("utf-8")),
                ("config_operation", Int8),
                ("value", String("utf-8")),
            )),
        )),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigs(Request[IncrementalAlterConfigsRequest_v0]):  # type: ignore[misc]
    API_KEY = 44

    def __init__(self, changes: Mapping[str, Mapping[str, str]]) -> None:
        self._changes = changes

    def build(self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]
              ) -> IncrementalAlterConfigsRequest_v0:
        resources = [(ConfigResourceType.TOPIC.value, topic,
                      [(name, SET, value) for name, value in configs.items()])
                     for topic, configs in self._changes.items()]
        return request_struct_class(resources, False)


def differing(current: Mapping[str, Mapping[str, str | None]],
              wanted: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Per topic, the wanted entries whose value the topic does not have yet."""
    changes: dict[str, dict[str, str]] = {}
    for topic, configs in wanted.items():
        have = current.get(topic, {})
        changed = {name: value for name, value in configs.items() if have.get(name) != value}
        if changed:
            changes[topic] = changed
    return changes


async def topic_configs(admin: AIOKafkaAdminClient, topics: list[str],
                        wait_seconds: float = 30.0) -> dict[str, dict[str, str | None]]:
    """Every topic's effective config (defaults included), by topic. A topic created a moment ago
    may not be known to every broker yet: asked again, until `wait_seconds` have passed."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            return await _describe(admin, topics)
        except UnknownTopicOrPartitionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _describe(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str | None]]:
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    found: dict[str, dict[str, str | None]] = {}
    for response in responses:
        for error_code, error_message, _, name, entries, *_ in response.resources:
            if error_code:
                raise for_code(error_code)(f"describing {name}: {error_message}")
            found[name] = {entry[0]: entry[1] for entry in entries}
    return found


async def set_topic_configs(admin: AIOKafkaAdminClient,
                            wanted: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Give each topic the wanted config entries, changing only those that differ and nothing
    else; returns what was changed (nothing when all was already so)."""
    changes = differing(await topic_configs(admin, list(wanted)), wanted)
    if changes:
        # Topic configs may be altered through any broker (the controller forwards them).
        response = await admin._client.send(admin._client.get_random_node(), IncrementalAlterConfigs(changes))
        for error_code, error_message, _, name in response.responses:
            if error_code:
                raise for_code(error_code)(f"altering {name}: {error_message}")
    return changes
