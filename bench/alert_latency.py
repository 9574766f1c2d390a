"""Time from a detractor response accepted by surveys to the Slack message at the local sink.

Runs the whole stack as real processes (four services, Kafka, PostgreSQL, the Slack/SMTP
stand-ins) and sends one detractor response at a time, so each figure is one alert's path:
surveys -> Kafka -> scoring -> Kafka -> alerts -> outbox -> Slack.

    .venv/bin/python -m bench.alert_latency [--alerts 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.support.infra import running_infra
from tests.support.stack import running_stack


def _env_prefix() -> str:
    # Slack pacing (one message per second per webhook) spaces back-to-back alerts; the figure
    # of the pipeline itself is measured with it off, and the command says so.
    pacing = os.environ.get("CHURNWATCH_SLACK_MIN_INTERVAL_SECONDS")
    return f"CHURNWATCH_SLACK_MIN_INTERVAL_SECONDS={pacing} " if pacing is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20)
    args = parser.parse_args()
    latencies: list[float] = []
    with running_infra() as infra, tempfile.TemporaryDirectory() as directory, \
            running_stack(infra, Path(directory)) as stack:
        surveys = stack.url("surveys")
        for n in range(args.alerts + 1):  # the first one warms every path up
            started = time.perf_counter()
            response = httpx.post(f"{surveys}/v1/responses", auth=("test-write-key", ""), json={
                "response_id": f"bench-{n}", "account_id": f"acct-{n}", "survey_type": "nps",
                "score": 2, "comment": "bench", "submitted_at": datetime.now(UTC).isoformat()})
            response.raise_for_status()
            stack.sinks.wait_for("slack", n + 1, timeout=30)
            if n:
                latencies.append(time.perf_counter() - started)
    result = {
        "benchmark": "alert_latency",
        "command": _env_prefix() + f".venv/bin/python -m bench.alert_latency --alerts {args.alerts}",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "alerts": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "results" / "alert_latency.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
