"""`make demo`: the whole system on this machine, fed by a small simulated customer base.

Starts Kafka, PostgreSQL, the four services and the local Slack/SMTP stand-ins (as `make run`
does, with its own data directory, emptied at each start), sends four weeks of history at
once so scores have a baseline, then streams the following weeks at `--pace` simulated days
per second. Every simulated week it prints the portfolio's bands and the biggest score moves
(read from the scoring API); alerts appear as `[slack]` / `[email]` lines from the sink.
When the simulation is over the system keeps running for you to explore (the URLs are
printed); Ctrl-C stops every process by its pid.

    .venv/bin/python -m simulator.demo [--accounts 30 --days 60 --pace 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from deploy.local.processes import cache_dir
from deploy.local.stack import DEV_API_TOKEN, DEV_WRITE_KEY, LocalStack, say
from shared.settings import Settings
from simulator.model import SimDay, Simulation, SimulationConfig
from simulator.senders import Endpoints, Sender, stream

HISTORY_DAYS = 28
# The stack seeds this admin token (make run's development token unless one is configured).
API_TOKEN = os.environ.get("CHURNWATCH_BOOTSTRAP_API_TOKEN", DEV_API_TOKEN)
API_AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def urls() -> dict[str, str]:
    defaults = Settings()
    return {name: f"http://127.0.0.1:{getattr(defaults, f'{name}_port')}"
            for name in ("ingest", "scoring", "alerts", "surveys")}


async def wait_ready(client: httpx.AsyncClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(urls())
    while pending:
        for name, url in list(pending.items()):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz", timeout=1)).status_code == 200:
                    del pending[name]
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
        await asyncio.sleep(0.5)


class Portfolio:
    """Prints the bands and the week's biggest moves, from the scoring API."""

    def __init__(self, client: httpx.AsyncClient, simulation: Simulation) -> None:
        self.client = client
        self.names = {a.account_id: a.name for a in simulation.accounts()}
        self.previous: dict[str, float] = {}

    async def report(self, index: int, day: date) -> None:
        scores: dict[str, dict[str, Any]] = {}
        for account_id in self.names:
            response = await self.client.get(f"{urls()['scoring']}/v1/accounts/{account_id}/health",
                                             headers=API_AUTH)
            if response.status_code == 200:
                scores[account_id] = response.json()
        bands = {band: sum(1 for s in scores.values() if s["band"] == band)
                 for band in ("green", "yellow", "red")}
        moves = sorted(((s["score"] - self.previous[a], a) for a, s in scores.items() if a in self.previous),
                       key=lambda move: move[0])
        worst = [f"{self.names[a]} {self.previous[a]:g}→{scores[a]['score']:g}"
                 for change, a in moves[:3] if change <= -3]
        say("demo", f"day {index + 1} ({day}): {bands['green']} green, {bands['yellow']} "
            f"yellow, {bands['red']} red" + (f"; falling: {', '.join(worst)}" if worst else ""))
        self.previous = {a: s["score"] for a, s in scores.items()}


async def feed(config: SimulationConfig, pace: float) -> None:
    simulation = Simulation(config)
    endpoints = Endpoints(urls()["ingest"], urls()["surveys"], DEV_WRITE_KEY)
    async with httpx.AsyncClient(timeout=30) as client:
        await wait_ready(client)
        portfolio = Portfolio(client, simulation)
        sender = Sender(endpoints, client, concurrency=8)
        days = simulation.days()
        history = [next(days) for _ in range(HISTORY_DAYS)]
        say("demo", f"sending {HISTORY_DAYS} days of history for {config.accounts} accounts ...")
        await stream(history, sender, pace=None)
        await asyncio.sleep(2)  # let scoring catch up before the first report
        await portfolio.report(history[-1].index, history[-1].day)
        say("demo", f"now streaming {config.days - HISTORY_DAYS} more days at {pace:g} simulated "
            "day(s) per second; alerts print as [slack] and [email] lines")

        async def weekly(day: SimDay) -> None:
            if (day.index + 1) % 7 == 0:
                await portfolio.report(day.index, day.day)

        await stream(days, sender, pace=pace, on_day=weekly)
        if config.days % 7:
            await asyncio.sleep(2)
            await portfolio.report(config.days - 1, config.start + timedelta(days=config.days - 1))
        churned = [a for a in simulation.accounts() if a.churned_on]
        say("demo", f"simulation over: {len(churned)} of {config.accounts} accounts churned "
            f"({', '.join(a.name for a in churned) or 'none'}); {sender.stats.events} events sent")
        bearer = f"-H 'Authorization: Bearer {API_TOKEN}'"
        say("demo", f"explore: curl {bearer} {urls()['scoring']}/v1/accounts/acct-00001/health ; "
                    f"curl {bearer} {urls()['alerts']}/v1/accounts/acct-00001/alerts ; "
                    "Ctrl-C stops everything")
        await asyncio.Event().wait()


async def run_until_stopped(config: SimulationConfig, pace: float) -> None:
    task = asyncio.ensure_future(feed(config, pace))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.demo")
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--days", type=int, default=90, help="simulated days, the first 28 sent at once")
    parser.add_argument("--pace", type=float, default=2.0, help="simulated days per second after that")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.days <= HISTORY_DAYS:
        parser.error(f"--days must be more than the {HISTORY_DAYS} days of history")
    today = datetime.now(UTC).date()
    config = SimulationConfig(accounts=args.accounts, days=args.days, seed=args.seed,
                              start=today - timedelta(days=args.days), usage_scale=0.3,
                              decline_hazard=0.012)
    # Services log warnings only, so the demo's reports and the alerts stand out.
    os.environ.setdefault("CHURNWATCH_LOG_LEVEL", "WARNING")
    root = cache_dir() / "demo"
    stack = LocalStack(root=root)
    if root.exists() and stack.kafka.pid() is None and stack.postgres.pid() is None:
        shutil.rmtree(root)  # a fresh customer base every time
        stack = LocalStack(root=root)
    # Ctrl-C before the feed starts must still stop what was started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start_infrastructure()
        stack.start_services()
        say("stack", "Churnwatch is starting; the demo waits for every service to be ready")
        asyncio.run(run_until_stopped(config, args.pace))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        say("demo", f"stopped: {exc!r}")
        return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
