"""`churnwatch tokens create|list|revoke`: API tokens for the read APIs (and overrides, admin).

Works on the database named by `CHURNWATCH_DATABASE_URL`. A token is printed once, at
creation, and stored hashed; a revoked token is refused by every service from its next request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.api_tokens import Scope, TokenInfo, issue_token, list_tokens, revoke_token
from shared.operator_db import shown_time, with_migrated_engine
from shared.settings import Settings, get_settings

MAX_NAME_LENGTH = 100


def _row(info: TokenInfo) -> str:
    scopes = ",".join(sorted(info.scopes))
    return (f"{info.token_id:<21} {info.token_prefix:<11} {info.name[:30]:<31} {scopes:<40} "
            f"{shown_time(info.created_at):<26} {shown_time(info.last_used_at):<26} "
            f"{shown_time(info.revoked_at)}")


async def _create(engine: AsyncEngine, name: str, scopes: frozenset[Scope]) -> int:
    issued = await issue_token(engine, name, scopes)
    print(f"token_id: {issued.info.token_id}\nname:     {issued.info.name}\n"
          f"scopes:   {' '.join(sorted(issued.info.scopes))}\ntoken:    {issued.token}")
    print("The token is shown only now (it is stored hashed): send it as Authorization: Bearer <token>.",
          file=sys.stderr)
    return 0


async def _list(engine: AsyncEngine) -> int:
    print(f"{'TOKEN_ID':<21} {'PREFIX':<11} {'NAME':<31} {'SCOPES':<40} {'CREATED':<26} "
          f"{'LAST_USED':<26} REVOKED")
    for info in await list_tokens(engine):
        print(_row(info))
    return 0


async def _revoke(engine: AsyncEngine, token_id: str) -> int:
    info = await revoke_token(engine, token_id)
    if info is None:
        print(f"churnwatch tokens: no token with id {token_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {info.token_id} ({info.name}) at {shown_time(info.revoked_at)}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="churnwatch tokens",
                                   description="Create, list and revoke API tokens.")
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a token (shown once)")
    create.add_argument("--name", required=True, help="who or what uses it (e.g. console, crm-sync)")
    create.add_argument("--scope", action="append", required=True, choices=[s.value for s in Scope],
                        help="what it may do; repeat for several (admin: everything)")
    commands.add_parser("list", help="every token, without secrets")
    revoke = commands.add_parser("revoke", help="refuse a token from the next request on")
    revoke.add_argument("token_id", help="the token's id (tok_...), as listed")
    return root


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings or get_settings()
    if args.command == "create":
        name = args.name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            print(f"churnwatch tokens: --name must be 1 to {MAX_NAME_LENGTH} characters", file=sys.stderr)
            return 2
        scopes = frozenset(Scope(s) for s in args.scope)
        return asyncio.run(with_migrated_engine(settings, lambda engine: _create(engine, name, scopes)))
    if args.command == "list":
        return asyncio.run(with_migrated_engine(settings, _list))
    return asyncio.run(with_migrated_engine(settings, lambda engine: _revoke(engine, args.token_id)))


if __name__ == "__main__":
    sys.exit(main())
