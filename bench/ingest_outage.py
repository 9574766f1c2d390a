"""Duplicates on Kafka after a broker outage, with the official Segment client retrying.

Starts its own Kafka and PostgreSQL, runs ingest as a real process, and sends events with
`segment-analytics-python` (batches of 100, its own retries with back-off) at a steady rate
while the broker is stopped for `--outage` seconds mid-run and started again. Then counts the
messages on the topics against the unique messageIds the client generated.

    .venv/bin/python -m bench.ingest_outage [--events 3080] [--outage 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from deploy.local.processes import free_port
from shared.topics import Topics
from tests.support.infra import running_infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3080)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="spread of the sending")
    args = parser.parse_args()
    from segment.analytics.client import Client

    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        settings = infra.fresh_settings(log_level="INFO")
        ingest = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        errors: list[Any] = []
        sent: list[str] = []
        try:
            client = Client(write_key="test-write-key", host=ingest.base_url, upload_size=100,
                            on_error=lambda error, items: errors.append((repr(error), len(items))))

            def send() -> None:
                pause = args.seconds / args.events
                for n in range(args.events):
                    user = f"user-{n % 150}"
                    sent.append(client.track(user, "Report Built", {"n": n},
                                             context={"groupId": f"acct-{n % 10}"})[1]["messageId"])
                    time.sleep(pause)

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(args.seconds / 4)
            stopped_at = time.monotonic()
            infra.kafka.stop()
            time.sleep(max(0.0, args.outage - (time.monotonic() - stopped_at)))
            infra.kafka.start()
            outage = time.monotonic() - stopped_at
            sender.join()
            client.flush()
            client.join()
        finally:
            ingest.stop()
        on_topic = Counter(e.event_id for e in asyncio.run(
            read_topic(settings, Topics.from_settings(settings).usage, timeout=60)))
        log = Path(ingest.log_path).read_text()
    result = {
        "command": " ".join([".venv/bin/python -m bench.ingest_outage", *sys.argv[1:]]),
        "events_sent": len(sent),
        "broker_down_seconds": round(outage, 1),
        "messages_on_topic": sum(on_topic.values()),
        "unique_message_ids_on_topic": len(on_topic),
        "duplicated_message_ids": sum(1 for n in on_topic.values() if n > 1),
        "sent_ids_missing": len(set(sent) - set(on_topic)),
        "client_gave_up": errors,
        "ingest_503_in_doubt_outcomes_recorded": log.count("in_doubt_outcome_recorded"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
