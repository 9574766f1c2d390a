"""How well Churnwatch's scores and alerts anticipate churn, judged by the simulator's ground truth.

The whole system runs as processes; a simulated customer base (`--accounts` over `--days`)
is sent through the public APIs as fast as accepted, its ground truth kept as JSON lines.
Once scoring and alerts have consumed everything:

- ROC AUC: at weekly observation points (from day 28, while 30 days of future remain), each
  customer's latest health score by then (event time, from the health-scores topic) ranks
  who churns within the next 30 days; lower score = more risk; ties count one half;
- alert precision: the share of risk alerts (alerts API) that were right: the account churned
  within 90 days, was in a true decline then, or its hidden health was below 0.45;
- lead time: per churned account, days from its first risk alert in the 90 days before churn
  to the churn; the median, and the share of churned accounts that had such an alert.

    .venv/bin/python -m bench.quality [--accounts 200 --days 150 --usage-scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import (
    ALERTS_GROUP,
    SCORING_GROUP,
    command_line,
    end_offsets,
    input_topics,
    machine,
    running_system,
    stored_offsets,
    write_result,
)
from bench.quality_metrics import (
    AccountOutcome,
    ScorePoint,
    alert_is_right,
    lead_times,
    median,
    precision,
    roc_auc,
    weekly_observations,
)
from bench.scoring_memory import table_sizes
from shared.events import HealthScorePayload
from shared.settings import Settings
from shared.topics import Topics
from simulator.model import Simulation, SimulationConfig
from simulator.senders import Endpoints, Sender, stream
from simulator.truth import GroundTruth, TruthWriter, read_truth
from tests.support.infra import API_AUTH, Infra, running_infra
from tests.support.kafka import read_topic

WRITE_KEY = "test-write-key"


async def wait_consumed(settings: Settings, group: str, topics: Sequence[str], timeout: float) -> None:
    """Until the group's stored offsets on `topics` reach the topics' current end."""
    deadline = time.monotonic() + timeout
    end = await end_offsets(settings, topics)
    engine = create_async_engine(settings.database_url, pool_size=1)
    try:
        while await stored_offsets(engine, group, topics) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topics} not consumed to the end in {timeout:.0f}s")
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def simulate_into(settings: Settings, ingest_url: str, surveys_url: str, config: SimulationConfig,
                        truth_path: Path) -> dict[str, Any]:
    simulation = Simulation(config)
    started = time.perf_counter()
    with truth_path.open("wb") as out:
        truth = TruthWriter(out, config)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=16)) as client:
            sender = Sender(Endpoints(ingest_url, surveys_url, WRITE_KEY), client, concurrency=16)
            await stream(simulation.days(), sender, pace=None, on_day=lambda day: truth.days(day.truth))
        truth.accounts(simulation.accounts())
    sent_seconds = time.perf_counter() - started
    topics = Topics.from_settings(settings)
    await wait_consumed(settings, SCORING_GROUP, input_topics(settings), timeout=1800)
    await wait_consumed(settings, ALERTS_GROUP, [topics.risk_signals], timeout=600)
    return {"events_sent": sender.stats.events, "send_seconds": round(sent_seconds, 1),
            "send_and_score_seconds": round(time.perf_counter() - started, 1)}


async def score_histories(settings: Settings) -> dict[str, list[ScorePoint]]:
    histories: dict[str, list[ScorePoint]] = defaultdict(list)
    for envelope in await read_topic(settings, Topics.from_settings(settings).health_scores, timeout=300):
        if envelope.account_id is None:
            continue
        payload = envelope.payload_as(HealthScorePayload)
        histories[envelope.account_id].append(ScorePoint(envelope.occurred_at, payload.score))
    for history in histories.values():
        history.sort(key=lambda point: point.at)
    return histories


async def risk_alerts(alerts_url: str, accounts: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=alerts_url, timeout=30, headers=API_AUTH) as client:
        for account_id in accounts:
            response = await client.get(f"/v1/accounts/{account_id}/alerts", params={"limit": 500})
            response.raise_for_status()
            found += [a for a in response.json()["alerts"] if a["signal"].get("kind", "risk") == "risk"]
    return found


def outcomes_of(truth: GroundTruth) -> dict[str, AccountOutcome]:
    return {account_id: AccountOutcome(account.churned_on,
                                       [(d.start, d.end) for d in account.declines],
                                       truth.health.get(account_id, {}))
            for account_id, account in truth.accounts.items()}


def judge(truth: GroundTruth, histories: dict[str, list[ScorePoint]],
          alerts: list[dict[str, Any]], config: SimulationConfig) -> dict[str, Any]:
    outcomes = outcomes_of(truth)
    last_day = config.start + timedelta(days=config.days - 1)
    observations = weekly_observations(histories, outcomes, config.start, last_day)
    auc = roc_auc([-o.score for o in observations], [o.churns_within_horizon for o in observations])
    verdicts: list[bool] = []
    by_type: dict[str, list[bool]] = defaultdict(list)
    alert_days: dict[str, list[date]] = defaultdict(list)
    for alert in alerts:
        alerted_on = date.fromisoformat(alert["occurred_at"][:10])
        right = alert_is_right(outcomes[alert["account_id"]], alerted_on)
        verdicts.append(right)
        by_type[alert["signal_type"]].append(right)
        alert_days[alert["account_id"]].append(alerted_on)
    leads = lead_times(alert_days, outcomes)
    churned = [a for a in truth.accounts.values() if a.churned_on is not None]
    value = precision(verdicts)
    lead = median(list(leads.values()))
    return {
        "accounts": len(truth.accounts),
        "churned_accounts": len(churned),
        "accounts_with_declines": sum(1 for a in truth.accounts.values() if a.declines),
        "observations": len(observations),
        "positive_observations": sum(o.churns_within_horizon for o in observations),
        "roc_auc_churn_30d": round(auc, 3) if auc is not None else None,
        "risk_alerts": len(verdicts),
        "alert_precision": round(value, 3) if value is not None else None,
        "alert_precision_by_signal": {t: {"alerts": len(v), "precision": round(sum(v) / len(v), 3)}
                                      for t, v in sorted(by_type.items())},
        "alerts_by_signal": dict(Counter(a["signal_type"] for a in alerts)),
        "median_lead_time_days": lead,
        "churned_with_alert_in_90_days": round(len(leads) / len(churned), 3) if churned else None,
    }


def measure(infra: Infra, log_dir: Path, config: SimulationConfig) -> dict[str, Any]:
    truth_path = log_dir / "truth.jsonl"
    # The simulated months are processed in minutes, long after they happened: alerts would take
    # every signal for a backfill (older than max_signal_age_hours) and open none. Judged here is
    # what alerts would open live, so that age limit is off for this run.
    routing = log_dir / "routing.yaml"
    routing.write_text("lifecycle:\n  max_signal_age_hours: null\n")
    with running_system(infra, log_dir, alerts_routing_file=str(routing)) as (settings, _, processes):
        sending = asyncio.run(simulate_into(settings, processes["ingest"].base_url,
                                            processes["surveys"].base_url, config, truth_path))
        truth = read_truth(truth_path)
        histories = asyncio.run(score_histories(settings))
        alerts = asyncio.run(risk_alerts(processes["alerts"].base_url, sorted(truth.accounts)))
        sizes = asyncio.run(table_sizes(settings.database_url))
    return {
        "simulation": {"accounts": config.accounts, "days": config.days, "seed": config.seed,
                       "usage_scale": config.usage_scale, "start": config.start.isoformat(), **sending},
        **judge(truth, histories, alerts, config),
        "state_bytes_per_account_after_history": sizes["state_bytes_per_account"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--usage-scale", type=float, default=0.1)
    args = parser.parse_args()
    config = SimulationConfig(accounts=args.accounts, days=args.days, seed=args.seed,
                              usage_scale=args.usage_scale)
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        result = {"benchmark": "quality", "command": command_line(), **machine(infra.postgres.url),
                  **measure(infra, Path(logs), config)}
    print(write_result("quality", result).read_text())


if __name__ == "__main__":
    main()
