"""Topic names and their creation. Every topic is documented in the README."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events import EventType
from shared.settings import Settings


@dataclass(frozen=True)
class Topics:
    usage: str
    traits: str
    tickets: str
    survey_responses: str
    health_scores: str
    risk_signals: str
    dead_letter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(
            usage=f"{p}usage",
            traits=f"{p}traits",
            tickets=f"{p}tickets",
            survey_responses=f"{p}survey-responses",
            health_scores=f"{p}health-scores",
            risk_signals=f"{p}risk-signals",
            dead_letter=f"{p}dead-letter",
        )

    def all(self) -> list[str]:
        return [
            self.usage,
            self.traits,
            self.tickets,
            self.survey_responses,
            self.health_scores,
            self.risk_signals,
            self.dead_letter,
        ]

    def for_event(self, event_type: EventType) -> str:
        return self._routes()[event_type]

    def event_types_by_topic(self) -> dict[str, frozenset[EventType]]:
        """The event types that belong on each topic (consumers dead-letter any other)."""
        by_topic: dict[str, set[EventType]] = {}
        for event_type, topic in self._routes().items():
            by_topic.setdefault(topic, set()).add(event_type)
        return {topic: frozenset(types) for topic, types in by_topic.items()}

    def _routes(self) -> dict[EventType, str]:
        return {
            EventType.TRACK: self.usage,
            EventType.PAGE: self.usage,
            EventType.SCREEN: self.usage,
            EventType.IDENTIFY: self.traits,
            EventType.GROUP: self.traits,
            EventType.TICKET: self.tickets,
            EventType.SURVEY_RESPONSE: self.survey_responses,
            EventType.HEALTH_SCORE: self.health_scores,
            EventType.RISK_SIGNAL: self.risk_signals,
        }


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every missing topic with the configured partition count; returns those created."""
    topics = Topics.from_settings(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics.all() if name not in existing]
        if missing:
            # Another service may create them between our list and create.
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name=name,
                            num_partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor,
                        )
                        for name in missing
                    ]
                )
        return missing
    finally:
        await admin.close()
