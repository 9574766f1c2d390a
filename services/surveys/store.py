"""Surveys' persistence: one row per response id, holding its latest revision.

Writes take an open connection so the caller keeps the row write, the Kafka publish and the
commit in one transaction: if Kafka does not acknowledge, the row is rolled back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.surveys.revisions import StoredResponse
from shared.events import SurveyType

metadata = MetaData()
survey_responses = Table(
    "survey_responses",
    metadata,
    Column("response_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("user_id", Text),
    Column("survey_type", Text, nullable=False),
    Column("score", Integer, nullable=False),
    Column("comment", Text),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("revision", Integer, nullable=False, server_default="1"),
    CheckConstraint("survey_type IN ('nps', 'csat', 'ces')", name="ck_survey_type"),
)


def _values(response: StoredResponse) -> dict[str, object]:
    return {
        "response_id": response.response_id,
        "account_id": response.account_id,
        "user_id": response.user_id,
        "survey_type": response.survey_type.value,
        "score": response.score,
        "comment": response.comment,
        "submitted_at": response.submitted_at,
        "received_at": response.received_at,
        "revision": response.revision,
    }


def _stored(row: Row[tuple[object, ...]]) -> StoredResponse:
    m = row._mapping
    return StoredResponse(
        response_id=m["response_id"],
        account_id=m["account_id"],
        user_id=m["user_id"],
        survey_type=SurveyType(m["survey_type"]),
        score=m["score"],
        comment=m["comment"],
        submitted_at=m["submitted_at"],
        received_at=m["received_at"],
        revision=m["revision"],
    )


async def insert_if_new(conn: AsyncConnection, response: StoredResponse) -> bool:
    """Store a first revision unless the id exists; True if this call created it.

    Two concurrent first submissions of one id serialise on the primary key here: the
    second waits for the first to commit or roll back, then finds the row or creates it.
    """
    statement = (
        insert(survey_responses)
        .values(_values(response))
        .on_conflict_do_nothing(index_elements=["response_id"])
        .returning(survey_responses.c.response_id)
    )
    return (await conn.execute(statement)).first() is not None


async def lock_response(conn: AsyncConnection, response_id: str) -> StoredResponse | None:
    """The stored response, locked until the transaction ends so amendments apply one at a time."""
    row = (
        await conn.execute(
            select(survey_responses).where(survey_responses.c.response_id == response_id).with_for_update()
        )
    ).first()
    return None if row is None else _stored(row)


async def update_response(conn: AsyncConnection, response: StoredResponse) -> None:
    await conn.execute(
        survey_responses.update()
        .where(survey_responses.c.response_id == response.response_id)
        .values(_values(response))
    )


async def load_response(conn: AsyncConnection, response_id: str) -> StoredResponse | None:
    row = (
        await conn.execute(select(survey_responses).where(survey_responses.c.response_id == response_id))
    ).first()
    return None if row is None else _stored(row)


@dataclass(frozen=True)
class ScoreHistogram:
    counts: dict[int, int]  # score -> number of responses
    first_submitted_at: datetime | None
    last_submitted_at: datetime | None


async def score_histogram(
    conn: AsyncConnection,
    account_id: str,
    survey_type: SurveyType,
    since: datetime | None,
    until: datetime | None,
) -> ScoreHistogram:
    """How many of the account's responses gave each score, submitted in [since, until)."""
    t = survey_responses
    query = (
        select(t.c.score, func.count(), func.min(t.c.submitted_at), func.max(t.c.submitted_at))
        .where(t.c.account_id == account_id, t.c.survey_type == survey_type.value)
        .group_by(t.c.score)
    )
    if since is not None:
        query = query.where(t.c.submitted_at >= since)
    if until is not None:
        query = query.where(t.c.submitted_at < until)
    rows = (await conn.execute(query)).all()
    return ScoreHistogram(
        counts={row[0]: row[1] for row in rows},
        first_submitted_at=min((row[2] for row in rows), default=None),
        last_submitted_at=max((row[3] for row in rows), default=None),
    )
