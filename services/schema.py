"""Every table of the running system, for alembic: autogenerate and `alembic check` compare these.

Each table is defined once, as a SQLAlchemy Core `Table` beside the store that queries it, on
that store module's own `MetaData`. This module only gathers those metadata; a store module
with tables of its own is listed here (tests/test_schema.py fails on one that is not).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from services.alerts.store import tables as alerts_tables
from services.console import sessions, users
from services.ingest import store as ingest_store
from services.ingest.helpdesk import store as helpdesk_store
from services.scoring import store as scoring_store
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from services.surveys.store import responses as surveys_store
from services.surveys.store import tickets as ticket_store
from shared import api_tokens, consumer, dead_letters, write_keys

METADATA: tuple[MetaData, ...] = (
    consumer.metadata,
    dead_letters.metadata,
    write_keys.metadata,
    api_tokens.metadata,
    ingest_store.metadata,
    helpdesk_store.metadata,
    scoring_store.metadata,
    surveys_store.metadata,
    campaign_store.metadata,
    contact_store.metadata,
    ticket_store.metadata,
    alerts_tables.metadata,
    users.metadata,
    sessions.metadata,
)
