"""`churnwatch simulate`: generate a customer base and send it through Churnwatch's public APIs.

    churnwatch simulate --accounts 50 --days 90 --seed 1 --pace fast \\
        --ingest-url http://127.0.0.1:8081 --surveys-url http://127.0.0.1:8084 \\
        --write-key cw_dev_local_write_key --truth truth.jsonl

`--pace 1` sends one simulated day per second (event time accelerated), `--pace fast` as fast
as Churnwatch accepts. `--dry-run` writes the events as JSON lines instead of sending them.
The same options and seed always give the same events (ids included) and ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date
from pathlib import Path
from typing import IO

import httpx
import orjson

from simulator.model import SimDay, Simulation, SimulationConfig
from simulator.senders import DeliveryError, Endpoints, Sender, stream
from simulator.truth import TruthWriter


def _pace(value: str) -> float | None:
    if value == "fast":
        return None
    try:
        pace = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not 'fast' or days per second") from exc
    if pace <= 0:
        raise argparse.ArgumentTypeError("pace must be positive (simulated days per second)")
    return pace


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="churnwatch simulate",
        description="Simulate a SaaS customer base and send its events to Churnwatch.")
    parser.add_argument("--accounts", type=int, default=50, help="customer accounts (default 50)")
    parser.add_argument("--days", type=int, default=90, help="simulated days (default 90)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--start", type=date.fromisoformat, default=SimulationConfig.start,
                        help=f"first simulated day (default {SimulationConfig.start})")
    parser.add_argument("--usage-scale", type=float, default=1.0,
                        help="share of user actions sent as track events (default 1.0)")
    parser.add_argument("--decline-hazard", type=float, default=SimulationConfig.decline_hazard,
                        help="daily chance a healthy account starts declining")
    parser.add_argument("--pace", type=_pace, default=None, metavar="fast|DAYS_PER_SECOND",
                        help="'fast' (default) or simulated days per wall-clock second")
    parser.add_argument("--ingest-url", default="http://127.0.0.1:8081")
    parser.add_argument("--surveys-url", default="http://127.0.0.1:8084")
    parser.add_argument("--write-key", default="cw_dev_local_write_key")
    parser.add_argument("--tickets-webhook-secret", default=None,
                        help="send tickets signed to /v1/webhooks/tickets (else /v1/tickets with the key)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--truth", type=Path, default=None,
                        help="write the ground truth (hidden health, churn, declines) as JSON lines")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="EVENTS.jsonl",
                        help="write the events to this file ('-' for stdout) instead of sending them")
    return parser


def config_from(args: argparse.Namespace) -> SimulationConfig:
    return SimulationConfig(accounts=args.accounts, days=args.days, seed=args.seed,
                            start=args.start, usage_scale=args.usage_scale,
                            decline_hazard=args.decline_hazard)


def write_events(day: SimDay, out: IO[bytes]) -> None:
    for event in day.events:
        out.write(orjson.dumps({"at": event.at, "account_id": event.account_id,
                                "channel": event.channel, "body": event.body}) + b"\n")


async def run(args: argparse.Namespace, truth_out: IO[bytes] | None,
              events_out: IO[bytes] | None) -> Sender | None:
    config = config_from(args)
    simulation = Simulation(config)
    truth = TruthWriter(truth_out, config) if truth_out is not None else None
    if events_out is not None:
        for day in simulation.days():
            write_events(day, events_out)
            if truth:
                truth.days(day.truth)
        if truth:
            truth.accounts(simulation.accounts())
        return None

    def record(day: SimDay) -> None:
        if truth:
            truth.days(day.truth)
        if (day.index + 1) % 10 == 0 or day.index + 1 == config.days:
            print(f"simulate: day {day.index + 1}/{config.days} ({day.day}) sent, "
                  f"{sender.stats.events} events so far", file=sys.stderr, flush=True)

    endpoints = Endpoints(args.ingest_url.rstrip("/"), args.surveys_url.rstrip("/"), args.write_key,
                          args.tickets_webhook_secret)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        sender = Sender(endpoints, client, concurrency=args.concurrency)
        await stream(simulation.days(), sender, pace=args.pace, on_day=record)
    if truth:
        truth.accounts(simulation.accounts())
    return sender


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config_from(args)
    except ValueError as exc:
        print(f"churnwatch simulate: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    truth_out = args.truth.open("wb") if args.truth else None
    events_out: IO[bytes] | None = None
    if args.dry_run is not None:
        events_out = sys.stdout.buffer if str(args.dry_run) == "-" else args.dry_run.open("wb")
    try:
        sender = asyncio.run(run(args, truth_out, events_out))
    except DeliveryError as exc:
        print(f"churnwatch simulate: not delivered: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"churnwatch simulate: {exc!r}", file=sys.stderr)
        return 1
    finally:
        for out in (truth_out, events_out):
            if out is not None and out is not sys.stdout.buffer:
                out.close()
    if sender is not None:
        stats, seconds = sender.stats, time.perf_counter() - started
        retries = ", ".join(f"{status or 'network'}: {n}" for status, n in sorted(stats.retries.items()))
        print(f"simulate: sent {stats.events} events ({stats.segment_messages} Segment messages in "
              f"{stats.batches} batches, {stats.tickets} ticket updates, {stats.survey_responses} "
              f"survey responses) in {seconds:.1f}s ({stats.events / seconds:,.0f}/s); "
              f"retries: {retries or 'none'}", file=sys.stderr)
    return 0
