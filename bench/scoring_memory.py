"""Scoring's durable state per account at 100,000 accounts, read from the `account_health` table.

A simulated base of `--accounts` accounts lives its first `--days` days (traits, usage,
tickets, surveys) and is loaded onto the input topics; one scoring process consumes it to
the end; then PostgreSQL says how big the state is:
  - `state_bytes_per_account`: mean stored size of the `state` JSONB (pg_column_size, i.e.
    after PostgreSQL's compression), the account's scoring memory proper;
  - `row_bytes_per_account`: mean size of the whole row (state, score, factors, ...);
  - `table_bytes_per_account`: the table with its indexes and TOAST (pg_total_relation_size)
    divided by the accounts, what the disk really holds;
  - `score_history_bytes_per_change`: the `score_changes` history, per recorded change.

    .venv/bin/python -m bench.scoring_memory [--accounts 100000 --days 1 --usage-scale 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import command_line, machine, write_result
from bench.scoring_throughput import Workload, scoring_run
from tests.support.infra import Infra, running_infra

SIZES_SQL = """
SELECT count(*) AS accounts,
       avg(pg_column_size(state)) AS state_bytes,
       avg(pg_column_size(account_health.*)) AS row_bytes,
       pg_total_relation_size('account_health') AS table_bytes,
       (SELECT count(*) FROM score_changes) AS changes,
       pg_total_relation_size('score_changes') AS changes_bytes
FROM account_health
"""


async def table_sizes(database_url: str) -> dict[str, Any]:
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")  # VACUUM needs it
    try:
        async with engine.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE account_health"))
            row = (await conn.execute(text(SIZES_SQL))).mappings().one()
    finally:
        await engine.dispose()
    accounts = int(row["accounts"])
    changes = int(row["changes"])
    return {
        "accounts_scored": accounts,
        "state_bytes_per_account": round(float(row["state_bytes"] or 0)),
        "row_bytes_per_account": round(float(row["row_bytes"] or 0)),
        "table_bytes_per_account": round(int(row["table_bytes"]) / accounts) if accounts else None,
        "score_changes": changes,
        "score_history_bytes_per_change": round(int(row["changes_bytes"]) / changes) if changes else None,
    }


def measure(infra: Infra, log_dir: Path, workload: Workload, timeout: float = 1800.0) -> dict[str, Any]:
    run = scoring_run(infra, log_dir, workload.events(), 1, timeout)
    sizes = asyncio.run(table_sizes(run["settings"].database_url))
    return {"workload": {"accounts": workload.accounts, "days": workload.days,
                         "usage_scale": workload.usage_scale, "events": run["events"]},
            "scoring_events_per_second": round(run["events_per_second"]), **sizes}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring_memory")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--usage-scale", type=float, default=0.02)
    args = parser.parse_args()
    workload = Workload(args.accounts, args.days, args.usage_scale, seed=13)
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        result = {"benchmark": "scoring_memory", "command": command_line(),
                  **machine(infra.postgres.url), **measure(infra, Path(logs), workload)}
    print(write_result("scoring_memory", result).read_text())


if __name__ == "__main__":
    main()
