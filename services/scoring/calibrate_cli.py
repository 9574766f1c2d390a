"""`churnwatch calibrate`: fit churn risk on the snapshots live scoring stored, judge it, register it.

Reads `risk_snapshots` and `risk_outcomes` (same CHURNWATCH_* settings as the services), fits
with a time split (train on the earlier weeks, validate on the later), prints a JSON summary
that puts the model, the scorecard and the naive 28-day count side by side on the same
validation rows, and optionally writes an HTML report and stores (`--save`) or stores and
activates (`--activate`) the model. Activation is refused when the model does not beat the
scorecard on validation, unless `--force`.

Exit codes: 0 done; 3 too few outcomes (nothing stored); 4 activation refused (nothing stored).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.scoring.model import moment
from services.scoring.risk import store as risk_store
from services.scoring.risk.artifact import sha256
from services.scoring.risk.calibrate import Calibration, calibrate, moments
from services.scoring.risk.calibration import TooFewOutcomes
from services.scoring.risk.features import FEATURES_VERSION
from services.scoring.risk.weekly import SchemaMismatch
from shared.db import create_engine
from shared.logging import configure_logging
from shared.operator_db import require_migrated
from shared.settings import get_settings

TOO_FEW = 3
REFUSED = 4


def default_user() -> str:
    return os.environ.get("USER") or getpass.getuser()


def parse_until(text: str) -> datetime:
    """A date (its 00:00 UTC) or an ISO moment (UTC if no zone given)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--until: {text!r} is not an ISO date or date-time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="churnwatch calibrate",
        description="Fit churn risk on the weekly snapshots live scoring stored; judge it on later weeks "
        "against the scorecard and a naive activity count.",
    )
    p.add_argument(
        "--until", type=parse_until, help="use only what was known by then (date or ISO time, UTC)"
    )
    p.add_argument("--horizon-days", type=float, default=30.0, help="label: churns within this many days")
    p.add_argument("--min-churns", type=int, default=20, help="churns needed on each side of the split")
    p.add_argument("--target-precision", type=float, default=0.7, help="alert threshold's target precision")
    p.add_argument("--report", type=Path, metavar="DIR", help="write an HTML report (index.html) here")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--save", action="store_true", help="store the model in the registry, inactive")
    store.add_argument("--activate", action="store_true", help="store the model and make it the active one")
    p.add_argument("--force", action="store_true", help="activate even if it does not beat the scorecard")
    p.add_argument("--by", default=None, help="who fits/activates (default: $USER)")
    return p


def registry_row(calibration: Calibration, by: str, now: datetime, observed_until: float) -> dict[str, Any]:
    data = calibration.artifact.to_bytes()
    return {
        "created_at": now,
        "fitted_by": by,
        "features_version": FEATURES_VERSION,
        "columns": list(calibration.artifact.columns),
        "kind": calibration.artifact.kind,
        "threshold": calibration.artifact.threshold,
        "horizon_days": calibration.artifact.horizon_days,
        "fitted_until": moment(observed_until),
        "metrics": orjson.loads(orjson.dumps(calibration.summary)),
        "artifact": data,
        "sha256": sha256(data),
    }


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    await require_migrated(settings)
    engine = create_engine(settings)
    by = args.by or default_user()
    try:
        async with engine.connect() as conn:
            snapshots = await risk_store.read_snapshots(conn, args.until)
            outcomes = await risk_store.read_outcomes(conn, args.until)
            watermark = await risk_store.observed_until(conn)
        if not snapshots or watermark is None:
            print(
                f"no risk snapshots{' by ' + args.until.isoformat() if args.until else ''}: live scoring "
                "writes them weekly in event time (`churnwatch replay --all` writes them from history)",
                file=sys.stderr,
            )
            return TOO_FEW
        observed = min(watermark, args.until.timestamp()) if args.until else watermark
        try:
            found = moments(snapshots, outcomes)
        except SchemaMismatch as exc:
            print(str(exc), file=sys.stderr)
            return 2
        try:
            calibration = await asyncio.to_thread(
                calibrate,
                found,
                observed,
                horizon_days=args.horizon_days,
                min_churns=args.min_churns,
                target_precision=args.target_precision,
            )
        except TooFewOutcomes as exc:
            print(str(exc), file=sys.stderr)
            return TOO_FEW
        summary = calibration.summary
        if args.report:
            from services.scoring.risk import report  # matplotlib only when a report is asked for

            summary["report"] = str(await asyncio.to_thread(report.write, calibration, args.report))
        if (args.activate or args.save) and not (args.save or summary["beats_scorecard"] or args.force):
            summary["activated"] = None
            print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
            chosen = summary["measured"][summary["chosen"]]["roc_auc"]
            print(
                f"not activated: the model's validation ROC AUC {chosen} does not beat the scorecard's "
                f"{summary['measured']['scorecard']['roc_auc']} (--force to activate anyway)",
                file=sys.stderr,
            )
            return REFUSED
        if args.activate or args.save:
            now = datetime.now(UTC)
            async with engine.begin() as conn:
                version = await risk_store.add_model(conn, registry_row(calibration, by, now, observed))
                if args.activate:
                    await risk_store.lock_registry(conn)
                    await risk_store.activate(conn, version, by, now, "activate")
            summary["version"] = version
            summary["activated"] = bool(args.activate)
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    configure_logging(get_settings(), "calibrate")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
