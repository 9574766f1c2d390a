"""Persistence of who can be surveyed: contacts (identify), memberships and account traits (group)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text, func, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.surveys.contacts import Contact
from services.surveys.responses.attribution import Directory

metadata = MetaData()
survey_contacts = Table(
    "survey_contacts",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("email", Text),
    Column("name", Text),
    Column("role", Text),
    # From the `zendesk_user_id` trait (migration 0004_surveys): how a Zendesk ticket finds its requester.
    Column("zendesk_user_id", Text),
    Column("traits", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_survey_contacts_email", "email"),
    Index("ix_survey_contacts_email_user", "email", "user_id", postgresql_where=text("email IS NOT NULL")),
    Index("ix_survey_contacts_zendesk_user", "zendesk_user_id",
          postgresql_where=text("zendesk_user_id IS NOT NULL")),
)
survey_memberships = Table(
    "survey_memberships",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_survey_memberships_account", "account_id"),
)
survey_accounts = Table(
    "survey_accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("traits", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


async def lock_contact_traits(conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = sorted(set(user_ids))  # one lock order for every transaction: no deadlocks
    if not ids:
        return {}
    rows = await conn.execute(
        select(survey_contacts.c.user_id, survey_contacts.c.traits)
        .where(survey_contacts.c.user_id.in_(ids)).order_by(survey_contacts.c.user_id).with_for_update())
    return {row[0]: dict(row[1]) for row in rows}


async def save_contacts(conn: AsyncConnection, contacts: list[tuple[Contact, dict[str, Any]]]) -> None:
    if not contacts:
        return
    statement = insert(survey_contacts).values([
        {"user_id": c.user_id, "email": c.email, "name": c.name, "role": c.role,
         "zendesk_user_id": c.zendesk_user_id, "traits": traits}
        for c, traits in sorted(contacts, key=lambda item: item[0].user_id)
    ])
    await conn.execute(statement.on_conflict_do_update(
        index_elements=["user_id"],
        set_={"email": statement.excluded.email, "name": statement.excluded.name,
              "role": statement.excluded.role, "zendesk_user_id": statement.excluded.zendesk_user_id,
              "traits": statement.excluded.traits,
              "updated_at": func.now()}))


async def add_memberships(conn: AsyncConnection, memberships: Iterable[tuple[str, str, datetime]]) -> None:
    latest: dict[tuple[str, str], datetime] = {}
    for user_id, account_id, occurred_at in memberships:
        key = (user_id, account_id)
        latest[key] = max(occurred_at, latest.get(key, occurred_at))
    if not latest:
        return
    statement = insert(survey_memberships).values([
        {"user_id": u, "account_id": a, "occurred_at": t} for (u, a), t in sorted(latest.items())])
    await conn.execute(statement.on_conflict_do_update(
        index_elements=["user_id", "account_id"],
        set_={"occurred_at": func.greatest(survey_memberships.c.occurred_at,
                                           statement.excluded.occurred_at)}))


async def lock_account_traits(conn: AsyncConnection, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(survey_accounts.c.account_id, survey_accounts.c.traits)
        .where(survey_accounts.c.account_id.in_(ids)).order_by(survey_accounts.c.account_id)
        .with_for_update())
    return {row[0]: dict(row[1]) for row in rows}


async def save_accounts(conn: AsyncConnection, accounts: dict[str, dict[str, Any]]) -> None:
    if not accounts:
        return
    statement = insert(survey_accounts).values(
        [{"account_id": a, "traits": t} for a, t in sorted(accounts.items())])
    await conn.execute(statement.on_conflict_do_update(
        index_elements=["account_id"],
        set_={"traits": statement.excluded.traits, "updated_at": func.now()}))


async def account_traits(conn: AsyncConnection, account_ids: Collection[str] | None = None
                         ) -> dict[str, dict[str, Any]]:
    query = select(survey_accounts.c.account_id, survey_accounts.c.traits)
    if account_ids is not None:
        if not account_ids:
            return {}
        query = query.where(survey_accounts.c.account_id.in_(list(account_ids)))
    return {row[0]: dict(row[1]) for row in await conn.execute(query)}


async def directory(conn: AsyncConnection, user_ids: Collection[str | None],
                    emails: Collection[str | None]) -> Directory:
    """The users of these emails and the accounts of all those users."""
    wanted_emails = sorted({e for e in emails if e})
    users_by_email: dict[str, set[str]] = defaultdict(set)
    if wanted_emails:
        rows = await conn.execute(select(survey_contacts.c.email, survey_contacts.c.user_id)
                                  .where(survey_contacts.c.email.in_(wanted_emails)))
        for email, user_id in rows:
            users_by_email[email].add(user_id)
    users = {u for u in user_ids if u} | {u for found in users_by_email.values() for u in found}
    accounts_by_user: dict[str, set[str]] = defaultdict(set)
    if users:
        rows = await conn.execute(select(survey_memberships.c.user_id, survey_memberships.c.account_id)
                                  .where(survey_memberships.c.user_id.in_(sorted(users))))
        for user_id, account_id in rows:
            accounts_by_user[user_id].add(account_id)
    return Directory(
        accounts_by_user={u: frozenset(a) for u, a in accounts_by_user.items()},
        users_by_email={e: frozenset(u) for e, u in users_by_email.items()},
    )


async def emails_of(conn: AsyncConnection, user_ids: Collection[str]) -> set[str]:
    if not user_ids:
        return set()
    rows = await conn.execute(select(survey_contacts.c.email).where(
        survey_contacts.c.user_id.in_(sorted(user_ids)), survey_contacts.c.email.is_not(None)))
    return {row[0] for row in rows}


async def load_contact(conn: AsyncConnection, user_id: str) -> Contact | None:
    row = (await conn.execute(select(survey_contacts).where(survey_contacts.c.user_id == user_id))).first()
    return None if row is None else _contact(row)


async def contacts_with_email(conn: AsyncConnection, email: str) -> list[Contact]:
    rows = await conn.execute(select(survey_contacts).where(survey_contacts.c.email == email)
                              .order_by(survey_contacts.c.updated_at.desc()))
    return [_contact(r) for r in rows]


async def contacts_with_zendesk_id(conn: AsyncConnection, zendesk_user_id: str) -> list[Contact]:
    """Every contact that says it is this Zendesk user (more than one is a conflict to report)."""
    rows = await conn.execute(select(survey_contacts)
                              .where(survey_contacts.c.zendesk_user_id == zendesk_user_id)
                              .order_by(survey_contacts.c.user_id))
    return [_contact(r) for r in rows]


def _contact(row: Any) -> Contact:
    return Contact(row.user_id, row.email, row.name, row.role, row.zendesk_user_id)


@dataclass(frozen=True)
class MembershipRow:
    user_id: str
    account_id: str
    joined_at: datetime


async def memberships_of(conn: AsyncConnection, user_ids: Collection[str]) -> dict[str, list[MembershipRow]]:
    if not user_ids:
        return {}
    rows = await conn.execute(select(survey_memberships).where(
        survey_memberships.c.user_id.in_(sorted(user_ids))))
    found: dict[str, list[MembershipRow]] = defaultdict(list)
    for row in rows:
        found[row.user_id].append(MembershipRow(row.user_id, row.account_id, row.occurred_at))
    return dict(found)


async def reachable_contacts_page(conn: AsyncConnection, *, after: tuple[str, str] | None,
                                  limit: int) -> list[Contact]:
    """One page of the contacts with an email and at least one account (the population
    relationship surveys draw on), in (email, user_id) order after the keyset `after`."""
    c, m = survey_contacts, survey_memberships
    query = (select(c).where(c.c.email.is_not(None),
                             select(m.c.user_id).where(m.c.user_id == c.c.user_id).exists())
             .order_by(c.c.email, c.c.user_id).limit(limit))
    if after is not None:
        query = query.where(tuple_(c.c.email, c.c.user_id) > tuple_(literal(after[0]), literal(after[1])))
    return [_contact(r) for r in await conn.execute(query)]
