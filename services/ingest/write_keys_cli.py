"""`churnwatch write-keys create|list|revoke`: manage write keys in the configured database.

Works on the database named by `CHURNWATCH_DATABASE_URL` (migrating it first, so a fresh
database works), with the same code the admin API uses: a key is shown once, at creation,
and stored hashed; a revoked key is refused by every ingest instance from its next request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.keys import KeyInfo, issue_key, list_keys, revoke_key
from shared.operator_db import shown_time, with_migrated_engine
from shared.settings import Settings, get_settings

MAX_SOURCE_LENGTH = 100


def _row(info: KeyInfo) -> str:
    return (f"{info.key_id or '-':<20} {info.key_prefix or '-':<10} {info.source:<24} "
            f"{shown_time(info.created_at):<26} {shown_time(info.revoked_at)}")


async def _create(engine: AsyncEngine, source: str) -> int:
    issued = await issue_key(engine, source)
    print(f"key_id: {issued.info.key_id}\nsource: {issued.info.source}\nkey:    {issued.key}")
    print("The key is shown only now (it is stored hashed): copy it into the sender's config.",
          file=sys.stderr)
    return 0


async def _list(engine: AsyncEngine) -> int:
    print(f"{'KEY_ID':<20} {'PREFIX':<10} {'SOURCE':<24} {'CREATED':<26} REVOKED")
    for info in await list_keys(engine):
        print(_row(info))
    return 0


async def _revoke(engine: AsyncEngine, key_id: str) -> int:
    info = await revoke_key(engine, key_id)
    if info is None:
        print(f"churnwatch write-keys: no write key with id {key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {info.key_id} ({info.source}) at {shown_time(info.revoked_at)}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="churnwatch write-keys",
                                   description="Create, list and revoke ingest write keys.")
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a new key for a source (shown once)")
    create.add_argument("--source", required=True,
                        help="the name events sent with this key carry (e.g. web-app)")
    commands.add_parser("list", help="every key, without secrets")
    revoke = commands.add_parser("revoke", help="refuse a key from the next request on")
    revoke.add_argument("key_id", help="the key's id (wk_...), as listed")
    return root


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings or get_settings()
    if args.command == "create":
        source = args.source.strip()
        if not source or len(source) > MAX_SOURCE_LENGTH:
            print(f"churnwatch write-keys: --source must be 1 to {MAX_SOURCE_LENGTH} characters",
                  file=sys.stderr)
            return 2
        return asyncio.run(with_migrated_engine(settings, lambda engine: _create(engine, source)))
    if args.command == "list":
        return asyncio.run(with_migrated_engine(settings, _list))
    return asyncio.run(with_migrated_engine(settings, lambda engine: _revoke(engine, args.key_id)))


if __name__ == "__main__":
    sys.exit(main())
