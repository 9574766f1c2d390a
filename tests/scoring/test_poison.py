"""A poisoned event in scoring's input (a NUL in an account's name, which PostgreSQL would refuse
in text) is dead-lettered at decode; everything else is scored exactly as in a run without it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deploy.local.processes import free_port
from shared.dead_letters import read_dead_letters
from tests.scoring.events import T0, group
from tests.scoring.streams import publish, snapshot, wait_for_applied, workload
from tests.scoring.test_crash_recovery import assert_same_outcome
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually


async def test_a_poisoned_event_is_dead_lettered_and_the_rest_scored_as_without_it(
    infra: Infra, tmp_path: Path
) -> None:
    events = workload()
    total = len(events)
    poison = group("g-poison", "acct-3", "Bad\u0000Name", T0 + timedelta(days=10, minutes=1))
    poisoned = sorted([*events, poison], key=lambda e: (e.occurred_at, e.event_id))
    steady = infra.fresh_settings(scoring_consumer_max_batch=200)
    dirty = infra.fresh_settings(scoring_consumer_max_batch=200)
    await publish(steady, events)
    await publish(dirty, poisoned)

    for settings in (steady, dirty):
        process = ServiceProcess("scoring", settings, free_port(), tmp_path).start()
        try:
            await wait_for_applied(settings, total)

            if settings is dirty:
                async def dead_lettered() -> bool:
                    return len(await read_dead_letters(dirty)) >= 1

                await eventually(dead_lettered, "the poison on the dead-letter topic", within=60)
        finally:
            process.stop()

    assert_same_outcome(await snapshot(steady), await snapshot(dirty), total)
    letters = await read_dead_letters(dirty)
    assert len(letters) == 1
    assert letters[0].failure == "decode" and "payload.traits.name" in letters[0].reason
    assert "NUL" in letters[0].reason
    assert letters[0].consumer_group == "churnwatch-scoring"
    assert await read_dead_letters(steady) == []
