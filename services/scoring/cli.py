"""`churnwatch replay`: re-score one account or every account from the events Kafka retains."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.scoring.config import ScorecardError, load_scorecard
from services.scoring.replay import Replayer, publish_staged
from shared.db import create_engine, session_factory
from shared.logging import configure_logging
from shared.operator_db import require_migrated
from shared.settings import get_settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="churnwatch replay",
        description="Re-score accounts from the events Kafka retains, with the scorecard in force "
        "(or --scorecard). Replaces their state and history; tells downstream only which "
        "signals are open or cleared now (no alert for the past). Live scoring pauses on "
        "the partitions being rebuilt and reloads them after.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--account", help="the account id to re-score")
    target.add_argument("--all", action="store_true", help="re-score every account")
    p.add_argument("--scorecard", help="a scorecard YAML file (default: CHURNWATCH_SCORING_SCORECARD_PATH)")
    p.add_argument(
        "--dry-run", action="store_true", help="report what would change; write and publish nothing"
    )
    return p


async def replay(args: argparse.Namespace) -> int:
    settings = get_settings()
    card = load_scorecard(args.scorecard or settings.scoring_scorecard_path)
    await require_migrated(settings)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    try:
        report = await Replayer(settings, card, sessions).run(
            None if args.all else args.account, args.dry_run
        )
        for line in report.lines():
            print(line)
        if not args.dry_run:
            await publish_staged(settings, sessions)
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings, "scoring-replay")
    try:
        return asyncio.run(replay(args))
    except ScorecardError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
