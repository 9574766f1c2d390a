"""FastAPI dependencies a route declares instead of taking from its router's closure: the
database and the clock of the running service (`app.state`, set by `shared.service.service_app`
and by the service's `create_app`), as in `Annotated[..., Depends(...)]` aliases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection


async def _connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.parts.engine.connect() as conn:
        yield conn


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


# A connection for reading, returned to the pool once the response is made.
DbConnection = Annotated[AsyncConnection, Depends(_connection)]
# The service's clock read once per request: the wall clock, or a hand-moved one in tests.
Now = Annotated[datetime, Depends(_now)]
