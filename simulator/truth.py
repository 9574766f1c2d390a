"""The simulation's ground truth as JSON lines, written while it runs and read back by benchmarks.

Lines, each a JSON object with a `type`:
  {"type": "config", ...}  the configuration that produced the run (first line);
  {"type": "day", "account_id", "day", "health", "declining"}  hidden health, once per account
      per simulated day while the account is a customer (including its churn day);
  {"type": "account", "account_id", "name", "plan", "mrr", "seats", "csm_email", "set_point",
      "churned_on", "churn_reason", "renewed_on", "declines": [{"start", "end", "health_before",
      "lowest", "outcome"}], "champion_changes", "payment_failures"}  once per account, at the end.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import orjson

from simulator.model import AccountTruth, DayTruth, Decline, SimulationConfig


class TruthWriter:
    def __init__(self, out: IO[bytes], config: SimulationConfig) -> None:
        self._out = out
        self._write({"type": "config", **dataclasses.asdict(config)})

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(record) + b"\n")

    def days(self, truths: list[DayTruth]) -> None:
        for truth in truths:
            self._write({"type": "day", **dataclasses.asdict(truth)})

    def accounts(self, accounts: list[AccountTruth]) -> None:
        for account in accounts:
            self._write({"type": "account", **dataclasses.asdict(account)})


@dataclass
class GroundTruth:
    config: dict[str, Any]
    accounts: dict[str, AccountTruth]
    health: dict[str, dict[date, float]] = field(default_factory=lambda: defaultdict(dict))

    def churned_on(self, account_id: str) -> date | None:
        account = self.accounts.get(account_id)
        return account.churned_on if account else None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _account(record: dict[str, Any]) -> AccountTruth:
    declines = [Decline(start=date.fromisoformat(d["start"]), health_before=d["health_before"],
                        lowest=d["lowest"], end=_day(d["end"]), outcome=d["outcome"])
                for d in record["declines"]]
    return AccountTruth(
        account_id=record["account_id"], name=record["name"], plan=record["plan"],
        mrr=record["mrr"], seats=record["seats"], csm_email=record["csm_email"],
        set_point=record["set_point"], churned_on=_day(record["churned_on"]),
        churn_reason=record["churn_reason"],
        renewed_on=[date.fromisoformat(d) for d in record["renewed_on"]], declines=declines,
        champion_changes=[date.fromisoformat(d) for d in record["champion_changes"]],
        payment_failures=[date.fromisoformat(d) for d in record["payment_failures"]],
    )


def read_truth(path: Path) -> GroundTruth:
    config: dict[str, Any] = {}
    accounts: dict[str, AccountTruth] = {}
    health: dict[str, dict[date, float]] = defaultdict(dict)
    with path.open("rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            kind = record.pop("type")
            if kind == "config":
                config = record
            elif kind == "day":
                health[record["account_id"]][date.fromisoformat(record["day"])] = record["health"]
            elif kind == "account":
                accounts[record["account_id"]] = _account(record)
    return GroundTruth(config, accounts, health)
