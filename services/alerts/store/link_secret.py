"""The secret that signs alerts' action links, made once per database.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.store.tables import alert_link_secret


async def link_secret(session: AsyncSession) -> str:
    """The secret signing action links when none is configured: made once, shared by every instance."""
    await session.execute(
        insert(alert_link_secret)
        .values(id=1, secret=secrets.token_urlsafe(48))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return str(
        (
            await session.execute(select(alert_link_secret.c.secret).where(alert_link_secret.c.id == 1))
        ).scalar_one()
    )
