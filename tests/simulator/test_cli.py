"""`churnwatch simulate` as a user runs it: reproducible dry runs, ground truth, clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from shared.cli import main as churnwatch
from simulator import cli
from simulator.model import Simulation
from simulator.senders import DeliveryError, Endpoints, Sender, stream
from simulator.truth import read_truth


def test_simulate_is_a_churnwatch_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert churnwatch(["--help"]) == 0
    assert "simulate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        churnwatch(["simulate", "--help"])
    assert exit_info.value.code == 0
    assert "--write-key" in capsys.readouterr().out


def test_a_dry_run_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        events_path, truth_path = tmp_path / f"events-{run}.jsonl", tmp_path / f"truth-{run}.jsonl"
        assert churnwatch(["simulate", "--accounts", "5", "--days", "30", "--seed", "4",
                           "--dry-run", str(events_path), "--truth", str(truth_path)]) == 0
        outputs.append((events_path.read_bytes(), truth_path.read_bytes()))
    assert outputs[0] == outputs[1]
    lines = [orjson.loads(line) for line in outputs[0][0].splitlines()]
    assert {line["channel"] for line in lines} == {"segment", "ticket", "survey"}
    truth = read_truth(tmp_path / "truth-a.jsonl")
    assert truth.config["accounts"] == 5 and truth.config["seed"] == 4
    assert sorted(truth.accounts) == [f"acct-0000{n}" for n in range(1, 6)]
    assert all(len(days) >= 1 for days in truth.health.values())
    churned = [a for a in truth.accounts.values() if a.churned_on]
    for account in churned:
        assert max(truth.health[account.account_id]) == account.churned_on


def test_bad_options_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert churnwatch(["simulate", "--accounts", "0", "--dry-run", "-"]) == 2
    assert "accounts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        churnwatch(["simulate", "--pace", "slowly"])
    assert "pace" in capsys.readouterr().err


def test_an_unreachable_system_is_an_error_not_a_hang() -> None:
    # Nothing listens on port 9; network errors are retried, so give up quickly here.
    args = cli.build_parser().parse_args(["--accounts", "1", "--days", "1", "--ingest-url",
                                          "http://127.0.0.1:9", "--surveys-url", "http://127.0.0.1:9"])

    async def attempt() -> None:
        async with httpx.AsyncClient(timeout=1) as client:
            sender = Sender(Endpoints(args.ingest_url, args.surveys_url, args.write_key), client,
                            give_up_after=0.5)
            await stream(Simulation(cli.config_from(args)).days(), sender, pace=None)

    with pytest.raises(DeliveryError, match="network error"):
        asyncio.run(attempt())
