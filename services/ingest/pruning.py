"""Forgetting old message ids, in the background: a request never waits for the DELETE.

Every instance runs it (the DELETE is idempotent, and instances come and go): once at start,
so instances restarting more often than the interval still prune, then every
`CHURNWATCH_MESSAGE_ID_PRUNE_INTERVAL_SECONDS`. A failed pass (PostgreSQL unreachable) is
logged and counted, and the next one tries again: housekeeping must not end the process.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from services.ingest.metrics import MESSAGE_ID_PRUNES
from services.ingest.store import IngestStore
from shared.runtime.polling import PollingLoop

log = structlog.get_logger(__name__)


class MessageIdPruner:
    """A `BackgroundLoop`: `run` until `stop`."""

    def __init__(self, store: IngestStore, retention: timedelta, interval_seconds: float) -> None:
        self._store = store
        self._retention = retention
        self._interval = interval_seconds
        self._loop = PollingLoop()

    async def run(self) -> None:
        # Woken at once by stop(), so shutdown does not wait out the interval.
        await self._loop.run(self._pass, self._interval)

    def stop(self) -> None:
        self._loop.stop()

    async def _pass(self) -> bool:
        await self.prune_once()
        return False

    async def prune_once(self) -> None:
        try:
            forgotten = await self._store.prune_message_ids(self._retention)
        except Exception as exc:
            MESSAGE_ID_PRUNES.labels("failed").inc()
            log.warning("message_id_prune_failed", error=repr(exc), retry_in=self._interval)
            return
        MESSAGE_ID_PRUNES.labels("ok").inc()
        if forgotten:
            log.info("message_ids_pruned", count=forgotten)
