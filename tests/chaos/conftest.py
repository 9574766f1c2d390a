"""The chaos suite's own broker and PostgreSQL (its tests stop and restart them; every other
test keeps the session's), and a whole stack per test on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import Infra, running_infra
from tests.support.stack import Stack, running_stack

# The shared checks live beside the tests: their asserts explain themselves as the tests' do.
pytest.register_assert_rewrite("tests.chaos.pipeline")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first test also starts the suite's broker and PostgreSQL; a loaded machine may need
    # more than the default 300 s for that and a whole stack (a bound against hangs, not a target).
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(600))


@pytest.fixture(scope="package")
def chaos_infra() -> Iterator[Infra]:
    with running_infra() as started:
        yield started


@pytest.fixture
def stack(chaos_infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    # Up again whatever an earlier test left stopped (both starts do nothing if it runs).
    chaos_infra.kafka.start()
    chaos_infra.postgres.start()
    # Small batches: many commits under the load, so a kill lands between and inside them.
    with running_stack(chaos_infra, tmp_path, consumer_max_batch=20,
                       scoring_consumer_max_batch=50) as started:
        yield started
