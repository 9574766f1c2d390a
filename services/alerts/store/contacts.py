"""Account contacts: the CSM and owner traits the router reads, kept from the traits topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.store.tables import Row, account_contacts
from shared.account_facts import AccountFacts


async def lock_contact_traits(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(account_contacts.c.account_id, account_contacts.c.traits)
        .where(account_contacts.c.account_id.in_(wanted))
        .with_for_update()
    )
    return {r.account_id: dict(r.traits) for r in rows}


async def save_contacts(session: AsyncSession, rows: Mapping[str, Mapping[str, Any]]) -> None:
    if not rows:
        return
    values = []
    for account_id, traits in rows.items():
        facts = AccountFacts.from_traits(traits)
        values.append(
            {
                "account_id": account_id,
                "account_name": facts.name,
                "csm_email": facts.csm_email,
                "csm_slack_channel": facts.csm_slack_channel,
                "traits": dict(traits),
            }
        )
    statement = insert(account_contacts).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id"],
            set_={
                "account_name": statement.excluded.account_name,
                "csm_email": statement.excluded.csm_email,
                "csm_slack_channel": statement.excluded.csm_slack_channel,
                "traits": statement.excluded.traits,
                "updated_at": func.now(),
            },
        )
    )


async def load_traits(
    session: AsyncSession | AsyncConnection, account_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(account_contacts.c.account_id, account_contacts.c.traits).where(
            account_contacts.c.account_id.in_(wanted)
        )
    )
    return {r.account_id: dict(r.traits) for r in rows}


async def find_account(conn: AsyncConnection, text: str) -> Row | None:
    """An account by its id, else by its name (case-insensitive), as alerts knows it."""
    for condition in (
        account_contacts.c.account_id == text,
        func.lower(account_contacts.c.account_name) == text.lower(),
    ):
        row = (
            (
                await conn.execute(
                    select(account_contacts.c.account_id, account_contacts.c.account_name)
                    .where(condition)
                    .order_by(account_contacts.c.account_id)
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
        if row:
            return dict(row)
    return None
