"""Local infrastructure commands: `python -m deploy.local jars|run [--scoring-processes N]`
(also `churnwatch local ...`)."""

from __future__ import annotations

import argparse
import sys

from deploy.local.kafka import ensure_jars
from deploy.local.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("jars", help="download the Kafka broker jars into the cache (once)")
    run = commands.add_parser(
        "run", help="run Kafka, PostgreSQL, the migration step and the five services in the foreground")
    run.add_argument("--scoring-processes", type=int, default=1, metavar="N",
                     help="run N scoring consumers (one group, the partitions split between them; "
                          "at most CHURNWATCH_TOPIC_PARTITIONS do work)")
    args = parser.parse_args(argv)
    if args.command == "jars":
        print(ensure_jars())
        return 0
    if args.scoring_processes < 1:
        parser.error("--scoring-processes must be at least 1")
    return LocalStack(scoring_processes=args.scoring_processes).run()


if __name__ == "__main__":
    sys.exit(main())
