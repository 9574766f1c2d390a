"""Recipients' delivery preferences.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.routing.plan import StoredPreferences
from services.alerts.store.tables import Row, recipient_preferences


async def load_preferences(session: AsyncSession | AsyncConnection) -> dict[str, StoredPreferences]:
    rows = await session.execute(
        select(recipient_preferences.c.recipient, recipient_preferences.c.preferences)
    )
    return {r.recipient: StoredPreferences.model_validate(r.preferences) for r in rows}


async def get_preferences(conn: AsyncConnection, recipient: str) -> Row | None:
    row = (
        (
            await conn.execute(
                select(recipient_preferences).where(recipient_preferences.c.recipient == recipient)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def put_preferences(
    session: AsyncSession, recipient: str, prefs: StoredPreferences, actor: str | None, now: datetime
) -> None:
    values = {
        "recipient": recipient,
        "preferences": prefs.model_dump(mode="json", exclude_defaults=True),
        "updated_by": actor,
        "updated_at": now,
    }
    statement = insert(recipient_preferences).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["recipient"], set_={k: statement.excluded[k] for k in values if k != "recipient"}
        )
    )


async def delete_preferences(session: AsyncSession, recipient: str) -> bool:
    result = await session.execute(
        delete(recipient_preferences)
        .where(recipient_preferences.c.recipient == recipient)
        .returning(recipient_preferences.c.recipient)
    )
    return result.first() is not None
