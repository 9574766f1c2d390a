"""Persistence of survey definitions, invitations (an outbox of emails) and unsubscribes.

Every time is passed in by the caller (the scheduler's, the sender's or the page's clock),
never taken from the database's `now()`, so tests drive time without sleeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.surveys.invitations.definitions import Audience, Definition, DefinitionIn, Status, Trigger
from shared.events import SurveyType
from shared.runtime.work_queue import SENDING, WorkQueue

metadata = MetaData()
survey_definitions = Table(
    "survey_definitions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("survey_type", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("question", Text, nullable=False),
    Column("comment_question", Text),
    Column("audience", JSONB, nullable=False),
    Column("cadence_days", Integer),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
survey_invitations = Table(
    "survey_invitations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("definition_id", Text, ForeignKey("survey_definitions.id"), nullable=False),
    Column("email", Text, nullable=False),
    Column("user_id", Text),
    Column("account_id", Text),
    Column("ticket_id", Text),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("used_at", DateTime(timezone=True)),
    Column("response_id", Text),
    UniqueConstraint("definition_id", "ticket_id", name="uq_invitation_ticket"),
    Index("ix_survey_invitations_due", "status", "next_attempt_at"),
    Index("ix_survey_invitations_email", "email", "created_at"),
    Index("ix_survey_invitations_definition", "definition_id", "email", "created_at"),
)
WORK_QUEUE = WorkQueue(survey_invitations)
survey_unsubscribes = Table(
    "survey_unsubscribes",
    metadata,
    Column("email", Text, primary_key=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=False),
    Column("invitation_id", Text),
)

# Invitations that count as "surveyed" for the quiet period and the cadence.
COUNTED = ("pending", "sending", "sent", "failed")
# pg_advisory_xact_lock(class, key): the class keeps these apart from other advisory locks.
PERSON_LOCK_CLASS = 0x5356


# --- definitions ----------------------------------------------------------------------------


def _definition(row: Row[Any]) -> Definition:
    m = row._mapping
    return Definition(
        id=m["id"], name=m["name"], survey_type=SurveyType(m["survey_type"]),
        trigger=Trigger(m["trigger"]), question=m["question"],
        comment_question=m["comment_question"], audience=Audience.model_validate(m["audience"]),
        cadence_days=m["cadence_days"], status=Status(m["status"]),
        created_at=m["created_at"], updated_at=m["updated_at"],
    )


def _definition_values(body: DefinitionIn) -> dict[str, Any]:
    return {"name": body.name, "survey_type": body.survey_type.value, "trigger": body.trigger.value,
            "question": body.question, "comment_question": body.comment_question,
            "audience": body.audience.model_dump(mode="json"), "cadence_days": body.cadence_days,
            "status": body.status.value}


async def create_definition(conn: AsyncConnection, definition_id: str, body: DefinitionIn,
                            now: datetime) -> Definition:
    row = (await conn.execute(insert(survey_definitions).values(
        id=definition_id, created_at=now, updated_at=now, **_definition_values(body))
        .returning(survey_definitions))).one()
    return _definition(row)


async def replace_definition(conn: AsyncConnection, definition_id: str, body: DefinitionIn,
                             now: datetime) -> Definition | None:
    row = (await conn.execute(update(survey_definitions)
                              .where(survey_definitions.c.id == definition_id)
                              .values(updated_at=now, **_definition_values(body))
                              .returning(survey_definitions))).first()
    return None if row is None else _definition(row)


async def set_status(conn: AsyncConnection, definition_id: str, status: Status,
                     now: datetime) -> Definition | None:
    row = (await conn.execute(update(survey_definitions)
                              .where(survey_definitions.c.id == definition_id)
                              .values(status=status.value, updated_at=now)
                              .returning(survey_definitions))).first()
    return None if row is None else _definition(row)


async def lock_definition(conn: AsyncConnection, definition_id: str) -> Definition | None:
    row = (await conn.execute(select(survey_definitions).where(survey_definitions.c.id == definition_id)
                              .with_for_update())).first()
    return None if row is None else _definition(row)


async def load_definition(conn: AsyncConnection, definition_id: str) -> Definition | None:
    row = (await conn.execute(select(survey_definitions)
                              .where(survey_definitions.c.id == definition_id))).first()
    return None if row is None else _definition(row)


async def list_definitions(conn: AsyncConnection, *, trigger: Trigger | None = None,
                           status: Status | None = None) -> list[Definition]:
    query = select(survey_definitions).order_by(survey_definitions.c.created_at, survey_definitions.c.id)
    if trigger is not None:
        query = query.where(survey_definitions.c.trigger == trigger.value)
    if status is not None:
        query = query.where(survey_definitions.c.status == status.value)
    return [_definition(row) for row in await conn.execute(query)]


async def has_invitations(conn: AsyncConnection, definition_id: str) -> bool:
    found = (await conn.execute(select(survey_invitations.c.id)
                                .where(survey_invitations.c.definition_id == definition_id)
                                .limit(1))).first()
    return found is not None


# --- the person lock, unsubscribes and history ----------------------------------------------


async def lock_person(conn: AsyncConnection, email: str) -> None:
    """Serialise every invitation decision about one email (scheduler, ticket trigger, any
    instance) until the transaction ends, so two of them cannot both pass the quiet period."""
    key = int.from_bytes(hashlib.sha256(email.encode()).digest()[:4], "big", signed=True)
    await conn.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                       {"cls": PERSON_LOCK_CLASS, "key": key})


async def is_unsubscribed(conn: AsyncConnection, email: str) -> bool:
    found = (await conn.execute(select(survey_unsubscribes.c.email)
                                .where(survey_unsubscribes.c.email == email))).first()
    return found is not None


async def unsubscribed_among(conn: AsyncConnection, emails: Collection[str]) -> set[str]:
    if not emails:
        return set()
    rows = await conn.execute(select(survey_unsubscribes.c.email)
                              .where(survey_unsubscribes.c.email.in_(sorted(emails))))
    return {row[0] for row in rows}


async def unsubscribe(conn: AsyncConnection, email: str, now: datetime,
                      invitation_id: str | None) -> bool:
    """True if this call unsubscribed the email (False: it already was). Pending invitations
    to it are cancelled at once."""
    inserted = (await conn.execute(
        insert(survey_unsubscribes).values(email=email, unsubscribed_at=now, invitation_id=invitation_id)
        .on_conflict_do_nothing().returning(survey_unsubscribes.c.email))).first()
    await conn.execute(update(survey_invitations)
                       .where(survey_invitations.c.email == email,
                              survey_invitations.c.status == "pending")
                       .values(status="cancelled", last_error="unsubscribed"))
    return inserted is not None


async def last_invited_at(conn: AsyncConnection, email: str, definition_id: str | None = None
                          ) -> datetime | None:
    t = survey_invitations
    query = select(func.max(t.c.created_at)).where(t.c.email == email, t.c.status.in_(COUNTED))
    if definition_id is not None:
        query = query.where(t.c.definition_id == definition_id)
    latest: datetime | None = (await conn.execute(query)).scalar_one()
    return latest


async def recently_invited(conn: AsyncConnection, emails: Collection[str], since: datetime) -> set[str]:
    """Emails with a counted invitation after `since` (a cheap pre-filter for the scheduler)."""
    if not emails:
        return set()
    t = survey_invitations
    rows = await conn.execute(select(t.c.email).distinct().where(
        t.c.email.in_(sorted(emails)), t.c.status.in_(COUNTED), t.c.created_at > since))
    return {row[0] for row in rows}


# --- invitations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    id: str
    definition_id: str
    email: str
    user_id: str | None
    account_id: str | None
    ticket_id: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    attempts: int
    sent_at: datetime | None
    used_at: datetime | None
    response_id: str | None


def _invitation(row: Row[Any]) -> Invitation:
    m = row._mapping
    return Invitation(
        id=m["id"], definition_id=m["definition_id"], email=m["email"], user_id=m["user_id"],
        account_id=m["account_id"], ticket_id=m["ticket_id"], status=m["status"],
        created_at=m["created_at"], expires_at=m["expires_at"], attempts=m["attempts"],
        sent_at=m["sent_at"], used_at=m["used_at"], response_id=m["response_id"],
    )


async def create_invitation(conn: AsyncConnection, *, invitation_id: str, definition_id: str,
                            email: str, user_id: str | None, account_id: str | None,
                            ticket_id: str | None, now: datetime, expires_at: datetime) -> bool:
    """False if the definition already has an invitation for this ticket."""
    statement = insert(survey_invitations).values(
        id=invitation_id, definition_id=definition_id, email=email, user_id=user_id,
        account_id=account_id, ticket_id=ticket_id, status="pending", created_at=now,
        expires_at=expires_at, attempts=0, next_attempt_at=now)
    if ticket_id is not None:
        statement = statement.on_conflict_do_nothing(constraint="uq_invitation_ticket")
    created = (await conn.execute(statement.returning(survey_invitations.c.id))).first()
    return created is not None


async def load_invitation(conn: AsyncConnection, invitation_id: str, *, lock: bool = False
                          ) -> Invitation | None:
    query = select(survey_invitations).where(survey_invitations.c.id == invitation_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _invitation(row)


async def mark_used(conn: AsyncConnection, invitation_id: str, response_id: str, now: datetime) -> None:
    await conn.execute(update(survey_invitations).where(survey_invitations.c.id == invitation_id)
                       .values(used_at=now, response_id=response_id))


async def claim_due(conn: AsyncConnection, *, now: datetime, limit: int, lease: timedelta,
                    max_attempts: int) -> list[Invitation]:
    """Pending invitations due now, and ones whose sending lease ran out, become 'sending'."""
    t = survey_invitations
    due = WORK_QUEUE.lock_due(t.c.id, now=now, limit=limit, max_attempts=max_attempts)
    rows = await conn.execute(
        update(t).where(t.c.id.in_(due.scalar_subquery()))
        .values(**WORK_QUEUE.claimed(t.c.attempts + 1, now + lease))
        .returning(t))
    return sorted((_invitation(row) for row in rows), key=lambda i: i.id)


async def fail_exhausted(conn: AsyncConnection, *, now: datetime, max_attempts: int) -> int:
    """Invitations whose last lease ran out with no attempts left: failed, not retried forever."""
    t = survey_invitations
    result = await conn.execute(
        update(t).where(WORK_QUEUE.exhausted(now, max_attempts, statuses=(SENDING,)))
        .values(status="failed", last_error="gave up: the last attempt never reported back")
        .returning(t.c.id))
    return len(result.all())


async def complete(conn: AsyncConnection, invitation: Invitation, *, status: str, now: datetime,
                   error: str | None, retry_at: datetime | None) -> bool:
    """Record an attempt's result, fenced on its attempt number (a slower, older attempt
    that outlived its lease cannot overwrite a newer one). False if the lease was lost."""
    t = survey_invitations
    values: dict[str, Any] = {"status": status, "last_error": error}
    if status == "sent":
        values["sent_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    result = await conn.execute(
        update(t).where(WORK_QUEUE.held(invitation.id, invitation.attempts))
        .values(**values).returning(t.c.id))
    return result.first() is not None


@dataclass(frozen=True)
class CampaignCounts:
    definition_id: str
    invited: int  # sent
    responded: int  # sent and answered through their link
    pending: int
    failed: int
    cancelled: int
    first_invited_at: datetime | None
    last_invited_at: datetime | None


async def campaign_counts(conn: AsyncConnection, *, since: datetime | None, until: datetime | None,
                          definition_id: str | None = None) -> list[CampaignCounts]:
    t = survey_invitations

    def count_where(*conditions: Any) -> Any:
        return func.count().filter(and_(*conditions))

    query = select(
        t.c.definition_id,
        count_where(t.c.status == "sent"),
        count_where(t.c.status == "sent", t.c.used_at.is_not(None)),
        count_where(t.c.status.in_(("pending", "sending"))),
        count_where(t.c.status == "failed"),
        count_where(t.c.status == "cancelled"),
        func.min(t.c.sent_at), func.max(t.c.sent_at),
    ).group_by(t.c.definition_id)
    if since is not None:
        query = query.where(t.c.created_at >= since)
    if until is not None:
        query = query.where(t.c.created_at < until)
    if definition_id is not None:
        query = query.where(t.c.definition_id == definition_id)
    return [CampaignCounts(*row) for row in await conn.execute(query)]


async def invitations_to(conn: AsyncConnection, email: str) -> list[Invitation]:
    rows = await conn.execute(select(survey_invitations).where(survey_invitations.c.email == email)
                              .order_by(survey_invitations.c.created_at))
    return [_invitation(row) for row in rows]
