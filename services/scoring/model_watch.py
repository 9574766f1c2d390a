"""Which churn-risk model live scoring serves with: the registry's active version, loaded at
start and followed without a restart (a poll of `active_version`).

An activated version whose artifact does not load with this code (another feature schema, bytes
not as their recorded sha256) is refused with the difference named in the log and counted in
`churnwatch_scoring_model_refused_total`; scoring keeps the model it had, or the scorecard when
none. `churnwatch_scoring_model_version` and GET /v1/scoring/model say what is live.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.scoring import metrics
from services.scoring.model import moment
from services.scoring.risk import store as risk_store
from services.scoring.risk.artifact import ArtifactMismatch, load
from services.scoring.risk.serving import LiveModel
from shared.runtime.polling import PollingLoop

log = structlog.get_logger(__name__)


async def load_version(conn: AsyncConnection, version: int) -> LiveModel:
    """A stored version as live scoring serves it; ArtifactMismatch (the difference named) if this
    code cannot use it."""
    stored = await risk_store.model(conn, version)
    if stored is None:
        raise ArtifactMismatch(f"no model version {version} in the registry")
    artifact = load(bytes(stored["artifact"]), stored["sha256"])
    return LiveModel(version, artifact, stored["fitted_until"].timestamp())


class ModelWatch:
    def __init__(self, engine: AsyncEngine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self.current: LiveModel | None = None
        self.refused: dict[int, str] = {}  # version -> why, so a refusal is logged once
        self._loop = PollingLoop()
        metrics.MODEL_VERSION.set(0)

    async def refresh(self) -> bool:
        """Load the active version if it is new; False (nothing more due now) in every case."""
        async with self.engine.connect() as conn:
            version = await risk_store.active_version(conn)
            if version is None or version in self.refused:
                return False
            if self.current is not None and self.current.version == version:
                return False
            try:
                live = await load_version(conn, version)
            except ArtifactMismatch as exc:
                self.refuse(version, str(exc))
                if self.current is not None:
                    return False
                # At start, nothing loaded yet: the last good model is the latest earlier
                # activation this code can load (the scorecard if none).
                found = await self._last_good(conn)
                if found is None:
                    return False
                live = found
        self.current = live
        metrics.MODEL_VERSION.set(live.version)
        log.info(
            "scoring_model_live",
            version=live.version,
            active=version,
            kind=live.artifact.kind,
            threshold=live.artifact.threshold,
            scores_from=moment(live.since).isoformat(),
        )
        return False

    async def _last_good(self, conn: AsyncConnection) -> LiveModel | None:
        history = await risk_store.activations(conn)
        for row in reversed(history):
            version = int(row["version"])
            if version in self.refused:
                continue
            try:
                return await load_version(conn, version)
            except ArtifactMismatch as exc:
                self.refuse(version, str(exc))
        return None

    def refuse(self, version: int, reason: str) -> None:
        self.refused[version] = reason
        metrics.MODEL_REFUSED.labels(str(version)).inc()
        log.error(
            "scoring_model_refused",
            version=version,
            reason=reason,
            serving=f"model v{self.current.version}" if self.current else "scorecard",
        )

    async def _pass(self) -> bool:
        try:
            return await self.refresh()
        except Exception as exc:  # a database outage: keep serving with what is loaded, retry later
            log.warning("scoring_model_poll_failed", error=str(exc))
            return False

    def status(self) -> dict[str, Any]:
        live = self.current
        return {
            "serving": "model" if live else "scorecard",
            "version": live.version if live else None,
            "kind": live.artifact.kind if live else None,
            "threshold": live.artifact.threshold if live else None,
            "horizon_days": live.artifact.horizon_days if live else None,
            "scores_from": moment(live.since).isoformat() if live else None,
            "refused": [{"version": v, "reason": r} for v, r in sorted(self.refused.items())],
        }

    async def run(self) -> None:
        await self._loop.run(self._pass, self.interval)

    def stop(self) -> None:
        self._loop.stop()
