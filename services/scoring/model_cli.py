"""`churnwatch model list|activate VERSION|rollback`: the registry of fitted churn-risk models.

Every activation (and rollback) is recorded with who and when; `rollback` re-activates the
version that was active before the current one. A version whose artifact does not load with
this code's feature schema (or whose bytes differ from their recorded sha256) is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from services.scoring.calibrate_cli import default_user
from services.scoring.risk import store as risk_store
from services.scoring.risk.artifact import ArtifactMismatch, load
from shared.db import create_engine
from shared.logging import configure_logging
from shared.operator_db import require_migrated
from shared.settings import get_settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="churnwatch model", description="The registry of churn-risk models.")
    commands = p.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every stored version, the active one marked")
    activate = commands.add_parser("activate", help="make a stored version the active one")
    activate.add_argument("version", type=int)
    activate.add_argument("--by", default=None, help="who activates (default: $USER)")
    rollback = commands.add_parser("rollback", help="re-activate the version active before the current one")
    rollback.add_argument("--by", default=None, help="who rolls back (default: $USER)")
    return p


def previous_version(history: list[dict[str, object]]) -> int | None:
    """The version active before the current one, following earlier rollbacks back in time."""
    if not history:
        return None
    # Replay the history as a stack: an activation pushes, a rollback pops back to what it restored.
    stack: list[int] = []
    for row in history:
        version = int(str(row["version"]))
        if row["action"] == "rollback" and len(stack) >= 2 and stack[-2] == version:
            stack.pop()
        else:
            stack.append(version)
    return stack[-2] if len(stack) >= 2 else None


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    await require_migrated(settings)
    engine = create_engine(settings)
    try:
        if args.command == "list":
            async with engine.connect() as conn:
                rows = await risk_store.models(conn)
                active = await risk_store.active_version(conn)
            if not rows:
                print("no models stored: `churnwatch calibrate --activate` fits and stores one")
            for row in rows:
                measured = row["metrics"].get("measured", {})
                model_auc = measured.get(row["kind"], {}).get("roc_auc")
                card_auc = measured.get("scorecard", {}).get("roc_auc")
                mark = "*" if row["version"] == active else " "
                activated = (
                    f"activated {row['activated_at'].isoformat()} by {row['activated_by']}"
                    if row["activated_at"] else "never activated"
                )
                print(
                    f"{mark} v{row['version']}  {row['kind']}  fitted {row['created_at'].isoformat()} by "
                    f"{row['fitted_by']} until {row['fitted_until'].date()}  "
                    f"horizon {row['horizon_days']:g}d  "
                    f"AUC {model_auc} (scorecard {card_auc})  threshold {row['threshold']:.4f}  {activated}"
                )
            return 0
        by = args.by or default_user()
        async with engine.begin() as conn:
            await risk_store.lock_registry(conn)
            if args.command == "activate":
                version, action = args.version, "activate"
            else:
                found = previous_version(await risk_store.activations(conn))
                if found is None:
                    print("nothing to roll back to: fewer than two activations recorded", file=sys.stderr)
                    return 2
                version, action = found, "rollback"
            stored = await risk_store.model(conn, version)
            if stored is None:
                print(f"no model version {version}", file=sys.stderr)
                return 2
            try:
                load(bytes(stored["artifact"]), stored["sha256"])
            except ArtifactMismatch as exc:
                print(f"model version {version} refused: {exc}", file=sys.stderr)
                return 2
            await risk_store.activate(conn, version, by, datetime.now(UTC), action)
        print(f"model v{version} active ({action} by {by})")
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    configure_logging(get_settings(), "model")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
