"""`--help` on every entry point prints its usage and starts nothing: no server, no connection to
PostgreSQL or Kafka (both pointed at a listener here that counts who connects)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shared.cli import COMMANDS
from tests.support.infra import REPO_ROOT

SERVICES = ("ingest", "scoring", "alerts", "surveys", "console")
ENTRY_POINTS = [
    *[[sys.executable, "-m", f"services.{service}", "--help"] for service in SERVICES],
    [sys.executable, "-m", "shared.cli", "--help"],
    *[[sys.executable, "-m", "shared.cli", command, "--help"] for command in sorted(COMMANDS)],
    [sys.executable, "-m", "deploy.local", "--help"],
    [sys.executable, "-m", "deploy.local", "run", "--help"],
    [sys.executable, "-m", "deploy.local.sinks", "--help"],
]


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """Where every entry point's database and broker point: anything that connects is seen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock


def connections(sock: socket.socket) -> int:
    seen = 0
    while True:
        try:
            accepted, _ = sock.accept()
        except BlockingIOError:
            return seen
        accepted.close()
        seen += 1


@pytest.mark.parametrize("argv", ENTRY_POINTS, ids=lambda argv: " ".join(argv[2:]))
def test_help_prints_usage_and_starts_nothing(argv: list[str], listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    env |= {"CHURNWATCH_DATABASE_URL": f"postgresql+asyncpg://u:p@127.0.0.1:{port}/nothing",
            "CHURNWATCH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    for service in SERVICES:
        env[f"CHURNWATCH_{service.upper()}_PORT"] = str(port)  # a server could not bind here anyway
    # A server would never return on its own: the timeout (which kills it) fails the test.
    ran = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage:"), ran.stdout
    assert connections(listener) == 0, "the entry point connected to the database or the broker"
