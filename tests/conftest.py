from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.support.infra import Infra, running_infra
from tests.support.processes import ServiceProcess


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
