"""Every benchmark's code path, tiny, on the real broker and database: keeps `make bench` runnable.

These check that each benchmark runs end to end and that its figures are consistent with what
it did; the figures themselves (tiny runs on a busy machine) mean nothing and are not checked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from bench import __main__ as suite
from bench import end_to_end_latency, ingest_throughput, quality, scoring_memory, scoring_throughput
from deploy.local.processes import free_port
from shared.events import Envelope, decode
from shared.topics import Topics, ensure_topics
from simulator.model import SimulationConfig
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess


def test_ingest_throughput_paths(infra: Infra, tmp_path: Path) -> None:
    settings = infra.fresh_settings(rate_limit_events_per_second=1e9, rate_limit_burst=10**9)
    batches = [ingest_throughput.segment_batch(n) for n in range(3)]
    ingest = ServiceProcess("ingest", settings, free_port(), tmp_path).start()
    try:
        seconds, latencies = asyncio.run(ingest_throughput.through_ingest(
            ingest.base_url, [orjson.dumps(b) for b in batches]))
    finally:
        ingest.stop()
    assert seconds > 0 and len(latencies) == 3
    # The reference sends what ingest put on Kafka for the same batches: same keys, same
    # envelopes (but the time each was received).
    reference = ingest_throughput.ingest_bytes(batches, settings)
    published = asyncio.run(read_topic(settings, Topics.from_settings(settings).usage))
    assert len(reference) == len(published) == 3 * ingest_throughput.BATCH

    def unreceived(value: bytes) -> Envelope:
        return decode(value).model_copy(update={"received_at": None})

    by_id = {e.event_id: e for e in published}
    for event in reference:
        envelope = unreceived(event.value)
        assert envelope == by_id[envelope.event_id].model_copy(update={"received_at": None})
        assert event.key == by_id[envelope.event_id].partition_key()
    reference_settings = infra.fresh_settings()
    asyncio.run(ensure_topics(reference_settings))
    assert asyncio.run(ingest_throughput.bare_producer(
        settings, Topics.from_settings(reference_settings).usage, reference)) > 0


def test_scoring_throughput_and_scaling(infra: Infra, tmp_path: Path) -> None:
    result = scoring_throughput.measure(infra, tmp_path, scoring_throughput.Workload(accounts=40, days=7))
    workload = result["workload"]
    assert workload["events"] == sum(workload["per_topic"].values()) > 500
    assert result["scoring_events_per_second"] > 0 and result["bare_consumer_events_per_second"] > 0
    assert result["two_processes_events_per_second"] > 0


def test_scoring_memory(infra: Infra, tmp_path: Path) -> None:
    result = scoring_memory.measure(infra, tmp_path,
                                    scoring_throughput.Workload(accounts=300, days=1, usage_scale=0.05))
    assert result["accounts_scored"] == 300
    assert 0 < result["state_bytes_per_account"] <= result["row_bytes_per_account"]


def test_end_to_end_latency(infra: Infra, tmp_path: Path) -> None:
    result = end_to_end_latency.measure(infra, tmp_path, rate=500, seconds=4, accounts=10, warm_up=0)
    assert result["events_sent"] >= 1900  # 20 batches of 100, and the alert probes
    assert result["to_score_probes"] == 4 and result["to_score_probes_unseen"] == 0
    assert result["to_alert_probes"] >= 3 and result["to_alert_probes_unseen"] == 0
    assert 0 < result["to_score_p50_ms"] <= result["to_score_p99_ms"]
    assert result["ingest_rss_peak_mb"] > 0
    assert result["unscored_events_when_load_stopped"] >= 0
    assert [row[0] for row in suite.table({"latency": result})] == [
        "3 ingest -> score", "3 surveys -> Slack alert", "5 ingest RSS under load"]


def test_quality_and_the_summary_table(infra: Infra, tmp_path: Path) -> None:
    config = SimulationConfig(accounts=12, days=70, seed=23, usage_scale=0.1, decline_hazard=0.02)
    result = quality.measure(infra, tmp_path, config)
    assert result["accounts"] == 12
    assert result["observations"] > 0
    assert result["simulation"]["events_sent"] > 1000
    assert result["risk_alerts"] == sum(result["alerts_by_signal"].values())
    rows = suite.table({"quality": result})
    assert [row[0] for row in rows] == ["6 ROC AUC, churn in 30 d", "6 risk-alert precision",
                                        "6 median lead time"]
    about = {"cores": 2, "python": "3", "aiokafka": "0", "kafka": "4", "postgresql": "18"}
    assert "ROC AUC" in suite.render(rows, about)
