"""`churnwatch users create|list|disable`: who may sign in to the console, with which role.

The password is asked for twice at the terminal (never an argument, which would sit in the
shell's history and the process list), or read from standard input with `--password-stdin`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from services.console.users import (
    Role,
    User,
    UserExists,
    create_user,
    disable_user,
    list_users,
    normalise_email,
    password_problem,
)
from shared.operator_db import shown_time, with_migrated_engine
from shared.settings import Settings, get_settings

PROG = "churnwatch users"


def _row(user: User) -> str:
    return (f"{user.user_id:<21} {user.email:<40} {user.role.value:<6} {shown_time(user.created_at):<26} "
            f"{shown_time(user.last_sign_in_at):<26} {shown_time(user.disabled_at)}")


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print(f"{PROG}: the passwords differ", file=sys.stderr)
        return None
    return first


async def _create(engine: AsyncEngine, email: str, role: Role, password: str) -> int:
    try:
        user = await create_user(engine, email, role, password)
    except UserExists:
        print(f"{PROG}: a user with email {email!r} exists already", file=sys.stderr)
        return 1
    print(f"user_id: {user.user_id}\nemail:   {user.email}\nrole:    {user.role.value}")
    return 0


async def _list(engine: AsyncEngine) -> int:
    print(f"{'USER_ID':<21} {'EMAIL':<40} {'ROLE':<6} {'CREATED':<26} {'LAST_SIGN_IN':<26} DISABLED")
    for user in await list_users(engine):
        print(_row(user))
    return 0


async def _disable(engine: AsyncEngine, email: str) -> int:
    user = await disable_user(engine, email)
    if user is None:
        print(f"{PROG}: no user with email {email!r}", file=sys.stderr)
        return 1
    print(f"disabled {user.email} at {shown_time(user.disabled_at)}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=PROG, description="Create, list and disable console users.")
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="add a user (asks for the password)")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role],
                        help="csm: their own book; lead: every account; admin: also tokens and users")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    commands.add_parser("list", help="every user, without passwords")
    disable = commands.add_parser("disable", help="refuse the user's sign-in and sessions from now on")
    disable.add_argument("email")
    return root


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings or get_settings()
    if args.command == "create":
        email = normalise_email(args.email)
        if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
            print(f"{PROG}: --email must be an email address", file=sys.stderr)
            return 2
        password = _read_password(args.password_stdin)
        if password is None:
            return 2
        if (problem := password_problem(password)) is not None:
            print(f"{PROG}: the password {problem}", file=sys.stderr)
            return 2
        role = Role(args.role)
        return asyncio.run(with_migrated_engine(settings,
                                                lambda engine: _create(engine, email, role, password)))
    if args.command == "list":
        return asyncio.run(with_migrated_engine(settings, _list))
    return asyncio.run(with_migrated_engine(settings, lambda engine: _disable(engine, args.email)))


if __name__ == "__main__":
    sys.exit(main())
