"""Ingest's PostgreSQL outages are answered by the shared implementation (shared.outage):
503 `database_unavailable` with `Retry-After`, the usual `{code, message}` body."""

from __future__ import annotations

from shared.outage import RETRY_AFTER_SECONDS, database_outage_as_503, database_unreachable

__all__ = ["RETRY_AFTER_SECONDS", "database_outage_as_503", "database_unreachable"]
