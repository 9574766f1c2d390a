"""`make bench`: every benchmark, each figure next to its physical reference, as one table.

Ingest throughput runs as its own program (bench/ingest_throughput.py, with its own broker);
the others share one Kafka broker and one PostgreSQL server, each on fresh topics and a
fresh database. Every benchmark writes bench/results/<name>.json; the table and all figures
go to bench/results/summary.json, with the command and the machine.

    .venv/bin/python -m bench [--quick] [--only scoring,latency,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import end_to_end_latency, quality, scoring_memory, scoring_throughput
from bench.harness import RESULTS, command_line, machine, write_result
from simulator.model import SimulationConfig
from tests.support.infra import Infra, running_infra

BENCHMARKS = ("ingest", "alert-idle", "scoring", "memory", "latency", "latency-low", "quality")


def sizes(quick: bool) -> dict[str, Any]:
    if quick:  # a few minutes in all: for trying the suite, not for the figures
        return {"ingest_events": 5000, "idle_alerts": 5,
                "scoring": scoring_throughput.Workload(accounts=300, days=14),
                "memory": scoring_throughput.Workload(accounts=5000, days=1, usage_scale=0.05, seed=13),
                "latency": {"rate": 2000.0, "seconds": 10.0, "accounts": 100},
                "latency-low": {"rate": 500.0, "seconds": 10.0, "accounts": 100},
                "quality": SimulationConfig(accounts=60, days=100, seed=23, usage_scale=0.1)}
    return {"ingest_events": 20_000, "idle_alerts": 20,
            "scoring": scoring_throughput.Workload(),
            "memory": scoring_throughput.Workload(accounts=100_000, days=1, usage_scale=0.02, seed=13),
            "latency": {"rate": 2000.0, "seconds": 30.0, "accounts": 300},
            # The same at a rate this machine sustains: the pipeline's own latency, unqueued.
            "latency-low": {"rate": 500.0, "seconds": 30.0, "accounts": 300},
            "quality": SimulationConfig(accounts=200, days=150, seed=23, usage_scale=0.1)}


def run_own_program(module: str, *args: str) -> dict[str, Any]:
    """A benchmark that starts its own broker and writes bench/results/<name>.json itself."""
    subprocess.run([sys.executable, "-m", f"bench.{module}", *args], check=True)
    result: dict[str, Any] = json.loads((RESULTS / f"{module}.json").read_text())
    return result


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def latency_rows(latency: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    load = (f"at {latency['achieved_events_per_second']:,} events/s (target "
            f"{latency['target_events_per_second']:,.0f}); unscored when load stopped: "
            f"{latency['unscored_events_when_load_stopped']:,}")
    rows = []
    for path, prefix, target in (("ingest -> score", "to_score", "p99 < 500 ms"),
                                 ("surveys -> Slack alert", "to_alert", "p99 < 2 s")):
        unseen = latency[f"{prefix}_probes_unseen"]
        rows.append((f"3 {path}", f"p50 {_ms(latency[f'{prefix}_p50_ms'])}, p95 "
                     f"{_ms(latency[f'{prefix}_p95_ms'])}, p99 {_ms(latency[f'{prefix}_p99_ms'])}",
                     load + (f"; {unseen} of {latency[f'{prefix}_probes']} probes unseen" if unseen else ""),
                     target))
    return rows


def table(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, reference measured in the same run, target) rows."""
    rows: list[tuple[str, str, str, str]] = []
    if ingest := results.get("ingest"):
        rows.append(("1 ingest /v1/batch", f"{ingest['ingest_events_per_second']:,} events/s",
                     f"bare aiokafka producer {ingest['bare_producer_events_per_second']:,} events/s "
                     f"({ingest['ingest_vs_bare']:.0%})", ">= 50% of bare"))
    if scoring := results.get("scoring"):
        rows.append(("2 scoring Kafka -> state", f"{scoring['scoring_events_per_second']:,} events/s",
                     f"bare aiokafka consumer {scoring['bare_consumer_events_per_second']:,} events/s "
                     f"({scoring['scoring_vs_bare']:.1%})", ">= 50% of bare"))
    for key in ("latency", "latency-low"):
        if latency := results.get(key):
            rows += latency_rows(latency)
    if idle := results.get("alert-idle"):
        rows.append(("3 surveys -> Slack, idle", f"p50 {_ms(idle['p50_ms'])}, max {_ms(idle['max_ms'])}",
                     f"{idle['alerts']} alerts one at a time, no other load", ""))
    if scoring and "two_processes_events_per_second" in scoring:
        rows.append(("4 scoring, 2 processes", f"{scoring['two_processes_events_per_second']:,} events/s",
                     f"1 process {scoring['scoring_events_per_second']:,} events/s "
                     f"(x{scoring['two_vs_one']})", "more than 1 process"))
    if memory := results.get("memory"):
        rows.append((f"5 scoring state at {memory['accounts_scored']:,} accounts",
                     f"{memory['state_bytes_per_account']:,} B/account (state JSONB)",
                     f"whole row {memory['row_bytes_per_account']:,} B, table+indexes "
                     f"{memory['table_bytes_per_account']:,} B", "<= 2 KB"))
    if latency := results.get("latency"):
        rows.append(("5 ingest RSS under load", f"peak {latency['ingest_rss_peak_mb']} MB",
                     f"idle {latency['ingest_rss_idle_mb']} MB, end {latency['ingest_rss_end_mb']} MB", ""))
    if q := results.get("quality"):
        rows.append(("6 ROC AUC, churn in 30 d", f"{q['roc_auc_churn_30d']}",
                     f"{q['observations']} weekly observations, {q['positive_observations']} positive; "
                     "0.5 = chance", ""))
        rows.append(("6 risk-alert precision", f"{q['alert_precision']}",
                     f"{q['risk_alerts']} risk alerts; {q['churned_accounts']} of {q['accounts']} "
                     "accounts churned", ""))
        rows.append(("6 median lead time", f"{q['median_lead_time_days']} days",
                     f"{q['churned_with_alert_in_90_days']:.0%} of churned accounts alerted "
                     "within 90 days before" if q["churned_with_alert_in_90_days"] is not None else "", ""))
    return rows


def render(rows: list[tuple[str, str, str, str]], about: dict[str, Any]) -> str:
    header = ("benchmark", "figure", "reference (same run)", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [f"Churnwatch benchmarks: {about['cores']} cores, Python {about['python']}, aiokafka "
             f"{about['aiokafka']}, Kafka {about['kafka']}, PostgreSQL {about.get('postgresql', '?')}; "
             f"1-minute load average at start {about.get('load_average_1m_at_start', '?')}"]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes: minutes, for trying it out")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = parser.parse_args()
    chosen = set(args.only.split(","))
    if unknown := chosen - set(BENCHMARKS):
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    plan = sizes(args.quick)
    command = command_line()
    results: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    own_programs = {"ingest": ("ingest_throughput", "--events", str(plan["ingest_events"])),
                    "alert-idle": ("alert_latency", "--alerts", str(plan["idle_alerts"]))}
    for key, (module, *module_args) in own_programs.items():
        if key in chosen:
            started = time.perf_counter()
            results[key] = run_own_program(module, *module_args)
            timings[key] = time.perf_counter() - started
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        about = machine(infra.postgres.url)
        steps: dict[str, tuple[str, Callable[[Infra, Path], dict[str, Any]]]] = {
            "scoring": ("scoring_throughput",
                        lambda i, d: scoring_throughput.measure(i, d, plan["scoring"])),
            "memory": ("scoring_memory", lambda i, d: scoring_memory.measure(i, d, plan["memory"])),
            "latency": ("end_to_end_latency",
                        lambda i, d: end_to_end_latency.measure(i, d, **plan["latency"])),
            "latency-low": ("end_to_end_latency_500",
                            lambda i, d: end_to_end_latency.measure(i, d, **plan["latency-low"])),
            "quality": ("quality", lambda i, d: quality.measure(i, d, plan["quality"])),
        }
        for key, (name, run) in steps.items():
            if key not in chosen:
                continue
            started = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            directory = Path(logs) / key  # each its own logs and sink record
            directory.mkdir()
            figures = run(infra, directory)
            timings[key] = time.perf_counter() - started
            results[key] = {"benchmark": name, "command": command, **about, **figures}
            write_result(name, results[key])
    rendered = render(table(results), about)
    print(rendered)
    write_result("summary", {"benchmark": "summary", "command": command, **about,
                             "seconds": {k: round(v) for k, v in timings.items()},
                             "table": rendered.splitlines(), "results": results})


if __name__ == "__main__":
    main()
