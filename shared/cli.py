"""`churnwatch <command> ...`: one entry point for the commands each part of Churnwatch offers.

Each command lives with the code it drives (a service's own `cli` module) and exposes
`main(argv: list[str]) -> int`; this module only names them, so `churnwatch --help` lists
everything an operator can run.
"""

from __future__ import annotations

import importlib
import sys

from shared.schema_version import SchemaNotCurrent

# command -> (module with `main(argv)`, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "local": ("deploy.local.__main__", "run the whole system locally (Kafka, PostgreSQL, services)"),
    # every service
    "migrate": ("shared.migrate_cli", "apply the schema migrations (run before starting a new version)"),
    "tokens": ("shared.tokens_cli", "create, list and revoke API tokens (scopes for the read APIs)"),
    "users": ("services.console.users_cli", "create, list and disable console users (csm, lead, admin)"),
    # every consumer
    "dead-letters": ("shared.dead_letters", "list, show and replay what consumers dead-lettered"),
    # ingest
    "write-keys": ("services.ingest.write_keys_cli", "create, list and revoke ingest write keys"),
    "ticket-mappings": ("services.ingest.ticket_mappings_cli",
                        "map help-desk organizations, requesters or email domains to accounts"),
    # simulator
    "simulate": ("simulator.cli", "simulate a SaaS customer base and send it through the public APIs"),
    "demo": ("simulator.demo", "the whole system locally, fed by a small simulated customer base"),
    "replay": ("services.scoring.cli", "re-score an account or all from the events Kafka retains"),
    "calibrate": ("services.scoring.calibrate_cli",
                  "fit churn risk on the stored weekly snapshots, judge it, optionally activate it"),
    "model": ("services.scoring.model_cli", "list, activate and roll back churn-risk models"),
}


def _usage() -> str:
    lines = ["usage: churnwatch <command> [options]", "", "commands:"]
    width = max(map(len, COMMANDS)) + 2
    lines += [f"  {name:<{width}}{summary}" for name, (_, summary) in sorted(COMMANDS.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if not args or args[0] not in COMMANDS:
        unknown = f"churnwatch: unknown command {args[0]!r}\n\n" if args else ""
        print(unknown + _usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    try:
        result: int = module.main(args[1:])
    except SchemaNotCurrent as problem:
        print(f"churnwatch {args[0]}: {problem}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
