"""Surveys' persistence of responses: one row per response id, holding its latest revision.

Writes take an open connection so the caller keeps the row write, the Kafka publish and the
commit in one transaction: if Kafka does not acknowledge, the row is rolled back with it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.surveys.responses.attribution import MappedBy
from services.surveys.responses.revisions import Channel, StoredResponse
from shared.events import SurveyType

metadata = MetaData()
survey_responses = Table(
    "survey_responses",
    metadata,
    Column("response_id", Text, primary_key=True),
    Column("account_id", Text),
    Column("user_id", Text),
    Column("survey_type", Text, nullable=False),
    Column("score", Integer, nullable=False),
    Column("comment", Text),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("source", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("respondent_email", Text),
    Column("mapped_by", Text),
    Column("campaign_id", Text),
    Column("invitation_id", Text),
    Column("ticket_id", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("survey_type IN ('nps', 'csat', 'ces')", name="ck_survey_type"),
    Index("ix_survey_responses_account", "account_id", "survey_type", "submitted_at"),
    Index("ix_survey_responses_submitted", "survey_type", "submitted_at"),
    Index("ix_survey_responses_respondent", "respondent_email", "submitted_at"),
    Index("ix_survey_responses_campaign", "campaign_id"),
    # Responses not yet mapped to an account, looked up again when a membership arrives.
    Index("ix_survey_responses_unmapped_email", "respondent_email",
          postgresql_where=text("account_id IS NULL")),
    Index("ix_survey_responses_unmapped_user", "user_id", postgresql_where=text("account_id IS NULL")),
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
        "source": response.source,
        "channel": response.channel.value,
        "respondent_email": response.respondent_email,
        "mapped_by": response.mapped_by.value if response.mapped_by else None,
        "campaign_id": response.campaign_id,
        "invitation_id": response.invitation_id,
        "ticket_id": response.ticket_id,
        "updated_at": response.version_at,
    }


def _stored(row: Row[Any]) -> StoredResponse:
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
        updated_at=m["updated_at"],
        source=m["source"],
        channel=Channel(m["channel"]),
        respondent_email=m["respondent_email"],
        mapped_by=MappedBy(m["mapped_by"]) if m["mapped_by"] else None,
        campaign_id=m["campaign_id"],
        invitation_id=m["invitation_id"],
        ticket_id=m["ticket_id"],
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


async def lock_unmapped_of(conn: AsyncConnection, user_ids: Collection[str],
                           emails: Collection[str]) -> list[StoredResponse]:
    """Unmapped responses from these users or emails, locked (SKIP LOCKED: one being amended
    right now is mapped by that amendment or the next contact change)."""
    t = survey_responses
    if not user_ids and not emails:
        return []
    rows = await conn.execute(
        select(t).where(t.c.account_id.is_(None),
                        or_(t.c.user_id.in_(list(user_ids)), t.c.respondent_email.in_(list(emails))))
        .order_by(t.c.response_id)
        .with_for_update(skip_locked=True)
    )
    return [_stored(row) for row in rows]


async def list_unmapped(conn: AsyncConnection, limit: int) -> tuple[int, list[StoredResponse]]:
    t = survey_responses
    count = (await conn.execute(select(func.count()).where(t.c.account_id.is_(None)))).scalar_one()
    rows = await conn.execute(select(t).where(t.c.account_id.is_(None))
                              .order_by(t.c.received_at.desc()).limit(limit))
    return int(count), [_stored(row) for row in rows]


async def last_response_at(conn: AsyncConnection, email: str | None, user_id: str | None) -> datetime | None:
    t = survey_responses
    conditions = []
    if email:
        conditions.append(t.c.respondent_email == email)
    if user_id:
        conditions.append(t.c.user_id == user_id)
    if not conditions:
        return None
    latest: datetime | None = (
        await conn.execute(select(func.max(t.c.submitted_at)).where(or_(*conditions)))).scalar_one()
    return latest


# --- aggregates -----------------------------------------------------------------------------


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


@dataclass(frozen=True)
class GroupedCounts:
    rows: list[tuple[Any, str | None, int, int]]  # (month | None, account_id, score, count)
    first_submitted_at: datetime | None
    last_submitted_at: datetime | None


async def grouped_counts(
    conn: AsyncConnection,
    survey_type: SurveyType,
    *,
    since: datetime | None,
    until: datetime | None,
    by_month: bool,
    account_id: str | None = None,
    campaign_id: str | None = None,
    channel: str | None = None,
) -> GroupedCounts:
    """Responses counted per (month, account, score): every grouping insight offers folds these."""
    t = survey_responses
    month = (func.to_char(func.timezone("UTC", t.c.submitted_at), "YYYY-MM") if by_month
             else literal(None))
    query = (
        select(month.label("month"), t.c.account_id, t.c.score, func.count(),
               func.min(t.c.submitted_at), func.max(t.c.submitted_at))
        .where(t.c.survey_type == survey_type.value)
        .group_by(month, t.c.account_id, t.c.score)
    )
    if since is not None:
        query = query.where(t.c.submitted_at >= since)
    if until is not None:
        query = query.where(t.c.submitted_at < until)
    if account_id is not None:
        query = query.where(t.c.account_id == account_id)
    if campaign_id is not None:
        query = query.where(t.c.campaign_id == campaign_id)
    if channel is not None:
        query = query.where(t.c.channel == channel)
    rows = (await conn.execute(query)).all()
    return GroupedCounts(
        rows=[(row[0], row[1], row[2], row[3]) for row in rows],
        first_submitted_at=min((row[4] for row in rows), default=None),
        last_submitted_at=max((row[5] for row in rows), default=None),
    )


async def responses_by_campaign(conn: AsyncConnection, campaign_ids: Collection[str]) -> dict[str, int]:
    t = survey_responses
    if not campaign_ids:
        return {}
    rows = await conn.execute(select(t.c.campaign_id, func.count()).where(
        t.c.campaign_id.in_(list(campaign_ids))).group_by(t.c.campaign_id))
    return {row[0]: row[1] for row in rows}
