"""Local infrastructure commands: `python -m deploy.local jars|run`."""

from __future__ import annotations

import argparse
import sys

from deploy.local.kafka import ensure_jars
from deploy.local.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("jars", help="download the Kafka broker jars into the cache (once)")
    commands.add_parser("run", help="run Kafka, PostgreSQL and all four services in the foreground")
    args = parser.parse_args(argv)
    if args.command == "jars":
        print(ensure_jars())
        return 0
    return LocalStack().run()


if __name__ == "__main__":
    sys.exit(main())
