from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from shared.settings import Settings
from tests.support.infra import Infra, running_infra
from tests.support.processes import ServiceProcess


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped with SIGTERM (`timeout`, CI cancelling a job) would otherwise die without
    # teardown and leave its broker, PostgreSQL and services running. As an interrupt, pytest
    # still tears the session's fixtures down, and they stop what they started, by pid.
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """One real Kafka broker and one real PostgreSQL server for the whole session."""
    with running_infra() as started:
        yield started


@pytest.fixture
def settings(infra: Infra) -> Settings:
    """Settings with a database and topics of this test's own."""
    return infra.fresh_settings()


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_session() -> Iterator[None]:
    yield
    ServiceProcess.stop_leftovers()


@pytest.fixture(autouse=True)
def no_process_outlives_its_test() -> Iterator[None]:
    """A test that fails half-way still leaves no service running: the processes it started are
    killed by pid. Those of module-scoped fixtures, started before it, live on for the module."""
    before = ServiceProcess.started_so_far()
    yield
    ServiceProcess.stop_leftovers(since=before)
