"""Ingest's persistence on the request path: write keys with their rate, user memberships,
and the message ids already accepted (all shared by every ingest instance).

Every request goes through here, so each step is one statement on a plain asyncpg pool
(prepared statements, no ORM layer, no ping or reset round trip per checkout): checking the
write key, its revocation and its rate is one round trip; claiming message ids is one
statement inside the transaction that spans Kafka's acks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from sqlalchemy import Boolean, Column, DateTime, Float, Index, MetaData, Table, Text, false, func
from sqlalchemy.engine import make_url

from services.ingest.attribution import Membership
from shared.write_keys import hash_key

# The tables, for the schema only: the statements below are plain SQL on asyncpg.
metadata = MetaData()
ingest_rate_buckets = Table(
    "ingest_rate_buckets",
    metadata,
    Column("bucket", Text, primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
user_accounts = Table(
    "user_accounts",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
ingest_message_ids = Table(
    "ingest_message_ids",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("in_doubt", Boolean, nullable=False, server_default=false()),
    Index("ix_ingest_message_ids_received_at", "received_at"),
)

# Tokens in a bucket now: what was left, refilled at `rate` since the last take, capped at `burst`.
# $rate and $burst are parameters 3 and 4 of both statements below; the database's clock is
# the only clock, so every instance refills the same bucket the same way.
_REFILLED = ("least($4::float8, {b}.tokens + $3::float8"
             " * greatest(0, extract(epoch FROM clock_timestamp() - {b}.updated_at)::float8))")
# A take of $2 tokens succeeds when the bucket holds min($2, burst): a request larger than
# the burst passes on a full bucket and leaves it in debt, so it is slowed, never refused forever.
_TAKE = f"""
    ON CONFLICT (bucket) DO UPDATE
    SET tokens = {_REFILLED.format(b="b")} - $2::float8,
        updated_at = greatest(b.updated_at, clock_timestamp())
    WHERE {_REFILLED.format(b="b")} >= least($2::float8, $4::float8)
    RETURNING 1
"""
_AUTHORIZE = f"""
WITH found AS (
    SELECT source FROM write_keys WHERE key_hash = $5 AND revoked_at IS NULL
), taken AS (
    INSERT INTO ingest_rate_buckets AS b (bucket, tokens, updated_at)
    SELECT $1, $4::float8 - $2::float8, clock_timestamp() FROM found
    {_TAKE}
)
SELECT found.source,
       EXISTS (SELECT 1 FROM taken) AS allowed,
       (SELECT {_REFILLED.format(b="r")} FROM ingest_rate_buckets r WHERE r.bucket = $1) AS available
FROM found
"""
_TAKE_TOKENS = f"""
WITH taken AS (
    INSERT INTO ingest_rate_buckets AS b (bucket, tokens, updated_at)
    VALUES ($1, $4::float8 - $2::float8, clock_timestamp())
    {_TAKE}
)
SELECT EXISTS (SELECT 1 FROM taken) AS allowed,
       (SELECT {_REFILLED.format(b="r")} FROM ingest_rate_buckets r WHERE r.bucket = $1) AS available
"""
_LOAD_MEMBERSHIPS = ("SELECT user_id, account_id, occurred_at FROM user_accounts"
                     " WHERE user_id = ANY($1::text[])")
# Sorted rows: this runs in the request's dedupe transaction, so rows are locked in one order.
_SAVE_MEMBERSHIPS = """
INSERT INTO user_accounts AS u (user_id, account_id, occurred_at, updated_at)
SELECT user_id, account_id, occurred_at, now()
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS m(user_id, account_id, occurred_at)
ON CONFLICT (user_id) DO UPDATE
SET account_id = excluded.account_id, occurred_at = excluded.occurred_at, updated_at = now()
WHERE u.occurred_at <= excluded.occurred_at
"""
# One array parameter rather than a VALUES row per id: a batch is up to 2,500 ids. An id left
# in doubt longer than $2 (no outcome was ever recorded: its instance died) is claimed again.
_CLAIM = """
INSERT INTO ingest_message_ids AS m (message_id)
SELECT id FROM unnest($1::text[]) WITH ORDINALITY AS claimed(id, n) ORDER BY n
ON CONFLICT (message_id) DO UPDATE SET received_at = now(), in_doubt = false
WHERE m.in_doubt AND m.received_at < now() - $2::interval
RETURNING message_id
"""
# Only when some ids were not claimed (a retry): which of those are still in doubt.
_IN_DOUBT = ("SELECT message_id FROM ingest_message_ids"
             " WHERE message_id = ANY($1::text[]) AND in_doubt")
_MARK_IN_DOUBT = ("UPDATE ingest_message_ids SET in_doubt = true, received_at = now()"
                  " WHERE message_id = ANY($1::text[])")
_RELEASE = "DELETE FROM ingest_message_ids WHERE message_id = ANY($1::text[])"
_DELIVERED = "UPDATE ingest_message_ids SET in_doubt = false WHERE message_id = ANY($1::text[])"
_FAILED = "DELETE FROM ingest_message_ids WHERE message_id = ANY($1::text[]) AND in_doubt"
_PRUNE = "DELETE FROM ingest_message_ids WHERE received_at < now() - $1::interval"


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


@dataclass(frozen=True)
class Admission:
    """The outcome of one rate check: allowed, or the seconds to wait before trying again."""

    allowed: bool
    wait_seconds: float


@dataclass(frozen=True)
class KeyAdmission(Admission):
    source: str | None  # None: the key is unknown or revoked


def _admission(allowed: bool, available: float | None, events: int, rate: Rate) -> Admission:
    if allowed:
        return Admission(True, 0.0)
    needed = min(float(events), float(rate.burst))
    return Admission(False, max(0.0, needed - (available or 0.0)) / rate.per_second)


def asyncpg_dsn(database_url: str) -> str:
    """The settings' SQLAlchemy URL (`postgresql+asyncpg://...`) as a plain libpq DSN."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _reset(connection: asyncpg.Connection) -> None:
    # The request path sets no session state (no SET, LISTEN or advisory lock), so the default
    # reset query on every release is a wasted round trip; only an interrupted transaction
    # needs undoing.
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class RequestTransaction:
    """One request's transaction on a connection of its own: claim the request's message ids,
    save the memberships its group calls set, and commit only once Kafka acked (else roll back).

    While it is open, another instance claiming the same id waits for it, then sees a
    duplicate (commit) or gets the id itself (rollback, the publish failed).
    """

    def __init__(self, pool: asyncpg.Pool, connection: asyncpg.Connection,
                 transaction: asyncpg.transaction.Transaction, in_doubt_for: timedelta) -> None:
        self._pool = pool
        self._in_doubt_for = in_doubt_for
        self._connection = connection
        self._transaction = transaction
        self.finished = False
        self.claimed: set[str] = set()
        self.in_doubt: set[str] = set()

    async def claim(self, message_ids: Collection[str]) -> set[str]:
        """Record the ids; return (and keep in `claimed`) those no one had recorded before.
        Those recorded before whose publish is still in doubt go to `in_doubt`.

        Sorted, so two requests sharing ids always lock them in the same order (no deadlock).
        """
        if message_ids:
            wanted = sorted(message_ids)
            rows = await self._connection.fetch(_CLAIM, wanted, self._in_doubt_for)
            self.claimed = {r["message_id"] for r in rows}
            if len(self.claimed) < len(wanted):  # a retry: never on the usual path
                others = [m for m in wanted if m not in self.claimed]
                found = await self._connection.fetch(_IN_DOUBT, others)
                self.in_doubt = {r["message_id"] for r in found}
        return self.claimed

    async def keep_in_doubt(self, handed: Collection[str], never_handed: Collection[str]) -> None:
        """After a failed publish: keep the claim of the ids whose record the producer may
        still send, marked in doubt, and release those it never got. The caller commits."""
        if never_handed:
            await self._connection.execute(_RELEASE, list(never_handed))
        if handed:
            await self._connection.execute(_MARK_IN_DOUBT, list(handed))

    async def save_memberships(self, changed: Mapping[str, Membership]) -> None:
        if not changed:
            return
        # Sorted rows, so concurrent requests lock them in one order.
        rows = sorted(changed.items())
        await self._connection.execute(
            _SAVE_MEMBERSHIPS, [user for user, _ in rows], [m.account_id for _, m in rows],
            [m.occurred_at for _, m in rows])

    async def finish(self, commit: bool) -> None:
        """Commit or roll back, then give the connection back. Idempotent."""
        if self.finished:
            return
        self.finished = True
        try:
            if commit:
                await self._transaction.commit()
            else:
                await self._transaction.rollback()
        finally:
            # Whatever happened (even a cancellation mid-commit), the pool's reset rolls back
            # a transaction left open before the connection is used again.
            await self._pool.release(self._connection)


class IngestStore:
    # A request may hold three at once: its key check, its memberships lookup and its claim.
    def __init__(self, database_url: str, max_connections: int = 30,
                 in_doubt_for: timedelta = timedelta(hours=1)) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._in_doubt_for = in_doubt_for
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        # synchronous_commit off: a commit returns before its WAL is flushed. What ingest writes
        # here is bookkeeping whose loss in a database crash costs no acknowledged event: a
        # forgotten message id lets one client retry through again (consumers drop repeated
        # event ids), a bucket refills a little early, a membership is re-set by the user's next
        # group call. Events themselves are durable in Kafka before any answer. The request path
        # saves a WAL flush per request.
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._max_connections,
                                               reset=_reset,
                                               server_settings={"synchronous_commit": "off"})

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the ingest store is not started")
        return self._pool

    async def authorize(self, key: str, events: int, rate: Rate) -> KeyAdmission:
        """The key's source if it exists and is not revoked, and whether it may send `events`
        now (taking them from its bucket if so): one statement, so a revocation is seen by the
        very next request on every instance, at no extra round trip."""
        key_hash = hash_key(key)
        row = await self.pool.fetchrow(_AUTHORIZE, f"key:{key_hash}", float(events),
                                       rate.per_second, float(rate.burst), key_hash)
        if row is None:
            return KeyAdmission(False, 0.0, None)
        admission = _admission(row["allowed"], row["available"], events, rate)
        return KeyAdmission(admission.allowed, admission.wait_seconds, row["source"])

    async def take_tokens(self, bucket: str, events: int, rate: Rate) -> Admission:
        """The rate check alone, for senders without a write key (signed webhooks)."""
        row = await self.pool.fetchrow(_TAKE_TOKENS, bucket, float(events), rate.per_second,
                                       float(rate.burst))
        assert row is not None
        return _admission(row["allowed"], row["available"], events, rate)

    async def load_memberships(self, user_ids: Iterable[str]) -> dict[str, Membership]:
        wanted = list(user_ids)
        if not wanted:
            return {}
        rows = await self.pool.fetch(_LOAD_MEMBERSHIPS, wanted)
        return {r["user_id"]: Membership(r["account_id"], r["occurred_at"]) for r in rows}

    async def settle_in_doubt(self, delivered: Collection[str], failed: Collection[str]) -> None:
        """The producer's outcome for ids kept in doubt: a delivered one is an ordinary accepted
        id (a retry is dropped), a failed one is released (a retry publishes it)."""
        async with self.pool.acquire() as connection, connection.transaction():
            if delivered:
                await connection.execute(_DELIVERED, list(delivered))
            if failed:
                await connection.execute(_FAILED, list(failed))

    async def begin(self) -> RequestTransaction:
        """A connection with a transaction open on it; the caller must `finish` it."""
        connection = await self.pool.acquire()
        try:
            transaction = connection.transaction()
            await transaction.start()
        except BaseException:
            await self.pool.release(connection)
            raise
        return RequestTransaction(self.pool, connection, transaction, self._in_doubt_for)

    @asynccontextmanager
    async def claiming(self, message_ids: Collection[str]) -> AsyncIterator[RequestTransaction]:
        """`begin` and `claim` for the body of an `async with`: committed on a normal exit,
        rolled back on an exception."""
        transaction = await self.begin()
        committed = False
        try:
            await transaction.claim(message_ids)
            yield transaction
            committed = True
        finally:
            await transaction.finish(commit=committed)

    async def prune_message_ids(self, retention: timedelta) -> int:
        """Forget ids received longer ago than `retention`; how many were forgotten."""
        status = await self.pool.execute(_PRUNE, retention)
        return int(status.rsplit(" ", 1)[-1])
