"""A "broker" that accepts connections and never answers: Kafka stuck, not down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def stuck_broker() -> AsyncIterator[int]:
    """Its port while open; every connection is held silent until the block ends."""
    released = asyncio.Event()

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await released.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        async with server:
            yield server.sockets[0].getsockname()[1]
    finally:
        released.set()
        await asyncio.sleep(0)  # let the held handlers see it and close their connections
