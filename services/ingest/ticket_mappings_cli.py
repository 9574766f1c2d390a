"""`churnwatch ticket-mappings set|list|delete`: the explicit help-desk → account mappings.

A mapping is `<kind>:<key>` → account, with kind `organization` (the help desk's
organization or company id), `zendesk_requester` (a Zendesk user id: Zendesk's ticket events
carry no requester email) or `email_domain` (the requester's email domain, exact). Works on
the database named by `CHURNWATCH_DATABASE_URL`; ingest reads mappings per ticket, so a
change applies to the next ticket on every instance.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.helpdesk.mapping import TicketMapping, parse_mapping_name
from services.ingest.helpdesk.store import delete_mapping, list_mappings, upsert_mappings
from shared.operator_db import with_migrated_engine
from shared.settings import Settings, get_settings


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="churnwatch ticket-mappings",
                                   description="Map help-desk organizations, Zendesk requesters or "
                                               "email domains to Churnwatch accounts.")
    commands = root.add_subparsers(dest="command", required=True)
    put = commands.add_parser("set", help="map <kind>:<key> to an account (replaces an earlier one)")
    put.add_argument("name", help="organization:<id>, zendesk_requester:<user id> or email_domain:<domain>")
    put.add_argument("account_id")
    commands.add_parser("list", help="every mapping")
    remove = commands.add_parser("delete", help="remove a mapping (published tickets keep their account)")
    remove.add_argument("name")
    return root


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings or get_settings()
    if args.command == "list":
        async def show(engine: AsyncEngine) -> int:
            for mapping in await list_mappings(engine):
                print(f"{mapping.kind.value}:{mapping.key}\t{mapping.account_id}")
            return 0

        return asyncio.run(with_migrated_engine(settings, show))
    try:
        kind, key = parse_mapping_name(args.name)
    except ValueError as exc:
        print(f"churnwatch ticket-mappings: {exc}", file=sys.stderr)
        return 2
    if args.command == "set":
        account = args.account_id.strip()
        if not account:
            print("churnwatch ticket-mappings: the account id is empty", file=sys.stderr)
            return 2

        async def put(engine: AsyncEngine) -> int:
            await upsert_mappings(engine, [TicketMapping(kind, key, account)])
            print(f"{kind.value}:{key} -> {account}")
            return 0

        return asyncio.run(with_migrated_engine(settings, put))

    async def remove(engine: AsyncEngine) -> int:
        if not await delete_mapping(engine, kind, key):
            print(f"churnwatch ticket-mappings: no mapping {kind.value}:{key}", file=sys.stderr)
            return 1
        print(f"deleted {kind.value}:{key}")
        return 0

    return asyncio.run(with_migrated_engine(settings, remove))


if __name__ == "__main__":
    sys.exit(main())
