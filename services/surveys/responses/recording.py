"""Recording a response, whichever way it came: attribute, store the revision, publish, commit.

One transaction holds the row write and the Kafka publish: the caller's 200 (or the page's
thank-you) comes only after both, and a publish that fails rolls the row back, so a retry
is safe. An unmapped response is stored and counted but not published; it is published
when a contact maps it (the consumer) or an amendment names its account.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.surveys.metrics import RESPONSES, UNMAPPED
from services.surveys.responses.attribution import Attribution, MappedBy, attribute
from services.surveys.responses.revisions import (
    Decision,
    IncomingResponse,
    Outcome,
    ResponseConflict,
    decide,
    first_revision,
    map_to,
    to_envelope,
)
from services.surveys.store import contacts as contact_store
from services.surveys.store import responses as store
from shared.events import Envelope, utcnow
from shared.http import ApiError
from shared.publisher import EventPublisher, PublishFailed


async def attribution_for(conn: AsyncConnection, incoming: IncomingResponse,
                          explicit_kind: MappedBy = MappedBy.EXPLICIT) -> Attribution:
    directory = await contact_store.directory(conn, [incoming.user_id], [incoming.respondent_email])
    return attribute(explicit_account=incoming.account_id, user_id=incoming.user_id,
                     email=incoming.respondent_email, directory=directory, explicit_kind=explicit_kind)


async def store_response(conn: AsyncConnection, incoming: IncomingResponse,
                         explicit_kind: MappedBy = MappedBy.EXPLICIT) -> Decision:
    """Write the submission's effect on its response row (locked until the transaction ends)."""
    attribution = await attribution_for(conn, incoming, explicit_kind)
    received_at = utcnow()
    candidate = first_revision(incoming, attribution, received_at)
    if await store.insert_if_new(conn, candidate):
        return Decision(Outcome.NEW, candidate)
    existing = await store.lock_response(conn, incoming.response_id)
    if existing is None:  # rows are never deleted, so this is a bug, not a race
        raise RuntimeError(f"response {incoming.response_id} vanished after a conflict")
    decision = decide(existing, incoming, attribution, received_at)
    if decision.outcome.changed:
        await store.update_response(conn, decision.response)
    return decision


def envelopes_for(decision: Decision) -> list[Envelope]:
    # Also for an unchanged response: the first publish's ack may have been lost. The event
    # id is the same, so consumers count it once.
    return [to_envelope(decision.response)] if decision.response.publishable else []


def count(decision: Decision) -> None:
    """Metrics for a committed decision."""
    response = decision.response
    RESPONSES.labels(response.survey_type.value, decision.outcome.value, response.channel.value).inc()
    if decision.outcome is Outcome.NEW and not response.publishable:
        UNMAPPED.labels(response.channel.value).inc()


class ResponseRecorder:
    def __init__(self, engine: AsyncEngine, publisher: EventPublisher) -> None:
        self.engine = engine
        self.publisher = publisher

    async def record_in(self, conn: AsyncConnection, incoming: IncomingResponse,
                        explicit_kind: MappedBy = MappedBy.EXPLICIT) -> Decision:
        """Store and publish inside the caller's transaction; raises ApiError 409/503."""
        try:
            decision = await store_response(conn, incoming, explicit_kind)
            await self.publisher.publish(envelopes_for(decision))
        except ResponseConflict as exc:
            raise ApiError(409, "response_conflict", str(exc), exc.errors) from exc
        except PublishFailed as exc:
            raise ApiError(503, "kafka_unavailable", f"{exc}; nothing was stored, retry later",
                           headers={"Retry-After": "5"}) from exc
        return decision

    async def record(self, incoming: IncomingResponse) -> Decision:
        async with self.engine.begin() as conn:
            decision = await self.record_in(conn, incoming)
        count(decision)
        return decision

    async def map_pending(self, conn: AsyncConnection, user_ids: set[str], emails: set[str]
                          ) -> list[Decision]:
        """Unmapped responses of these users/emails that contacts now attribute: mapped rows.

        A user who just joined an account may have answered by email only: their email is
        looked up too, whichever of identify and group arrived last.
        """
        emails = emails | await contact_store.emails_of(conn, user_ids)
        pending = await store.lock_unmapped_of(conn, user_ids, emails)
        if not pending:
            return []
        directory = await contact_store.directory(conn, [r.user_id for r in pending],
                                                  [r.respondent_email for r in pending])
        mapped = []
        for response in pending:
            attribution = attribute(explicit_account=None, user_id=response.user_id,
                                    email=response.respondent_email, directory=directory)
            decision = map_to(response, attribution)
            if decision.outcome is Outcome.MAPPED:
                await store.update_response(conn, decision.response)
                mapped.append(decision)
        return mapped
