"""Console users (issue 14): `churnwatch users create|list|disable`, argon2 hashes, sign-in
checks against the real database."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from services.console.users import Role, authenticate, users
from shared.db import create_engine
from shared.settings import Settings
from tests.ingest.test_operator_tools import run_cli

PASSWORD = "correct horse battery staple"


async def test_users_cli_create_list_disable_and_sign_in(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = await run_cli(settings, capsys, "users", "create", "--email", " Jane@Example.COM ",
                                   "--role", "csm", "--password-stdin")
    assert code == 0, err
    assert "email:   jane@example.com" in out and "role:    csm" in out

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = await run_cli(settings, capsys, "users", "create", "--email", "bob@example.com",
                                 "--role", "lead", "--password-stdin")
    assert code == 2 and "at least 12 characters" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, _, err = await run_cli(settings, capsys, "users", "create", "--email", "jane@example.com",
                                 "--role", "lead", "--password-stdin")
    assert code == 1 and "exists already" in err
    code, _, err = await run_cli(settings, capsys, "users", "create", "--email", "not-an-address",
                                 "--role", "lead", "--password-stdin")
    assert code == 2 and "--email must be an email address" in err

    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            [stored] = (await conn.execute(select(users.c.email, users.c.password_hash))).all()
        assert stored.email == "jane@example.com"
        assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash

        signed_in = await authenticate(engine, "JANE@example.com", PASSWORD)
        assert signed_in is not None and signed_in.role is Role.CSM and not signed_in.sees_every_account
        assert await authenticate(engine, "jane@example.com", PASSWORD + "!") is None
        assert await authenticate(engine, "nobody@example.com", PASSWORD) is None

        code, out, _ = await run_cli(settings, capsys, "users", "list")
        [row] = [line for line in out.splitlines() if "jane@example.com" in line]
        assert code == 0 and " csm " in row and PASSWORD not in out
        assert row.split()[4] != "-"  # last sign-in recorded

        code, out, _ = await run_cli(settings, capsys, "users", "disable", "jane@example.com")
        assert code == 0 and out.startswith("disabled jane@example.com")
        assert await authenticate(engine, "jane@example.com", PASSWORD) is None
        assert (await run_cli(settings, capsys, "users", "disable", "nobody@example.com"))[0] == 1
    finally:
        await engine.dispose()
