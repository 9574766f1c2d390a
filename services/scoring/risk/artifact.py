"""A fitted churn-risk model as stored in the registry: its feature schema and its estimator. No I/O.

The artifact names the columns it was fitted on (the fixed features and the event names chosen
at calibrate time) and the feature version that computed them. Loading it checks both against
this code, so a model never reads columns it was not fitted on: a mismatch is refused with the
difference named, and the caller keeps what it had (the scorecard, or the last good model).
The estimator is a scikit-learn object, serialized with pickle (what scikit-learn documents for
persistence): load only artifacts from this installation's own registry, whose bytes are
checked against the sha256 recorded when they were stored.

Format 2 adds `reference`: each column's median over the training rows. Live scoring explains
a score against it (a gradient-boosted model's contributions are p(x) minus p(x with that
column at its reference)), and words compare an account's value with it ("the typical account").
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.scoring.risk.features import FEATURES_VERSION, FIXED, FeatureSchema, Snapshot

ARTIFACT_FORMAT = 2


class ArtifactMismatch(ValueError):
    """An artifact this code cannot use: another feature schema, or bytes not as recorded."""


@dataclass(frozen=True)
class Artifact:
    schema: FeatureSchema
    kind: str  # the candidate chosen on validation, e.g. "gradient_boosting"
    threshold: float  # the probability alerts start at (chosen for the target precision)
    horizon_days: float
    estimator: Any  # a fitted scikit-learn classifier with predict_proba
    reference: tuple[float, ...] = ()  # per column, its training median (empty: format 1)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.schema.columns

    def probability(self, snapshots: Sequence[Snapshot]) -> NDArray[np.float64]:
        """The churn probability within the horizon, per snapshot."""
        if not snapshots:
            return np.zeros(0)
        return self.probability_of_rows(self.rows(snapshots))

    def rows(self, snapshots: Sequence[Snapshot]) -> NDArray[np.float64]:
        return np.asarray([self.schema.row(s) for s in snapshots], dtype=float).reshape(
            len(snapshots), len(self.columns)
        )

    def probability_of_rows(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        if not len(rows):
            return np.zeros(0)
        return np.asarray(self.estimator.predict_proba(rows)[:, 1], dtype=float)

    def to_bytes(self) -> bytes:
        return pickle.dumps(
            {
                "format": ARTIFACT_FORMAT,
                "features_version": self.schema.version,
                "fixed": list(FIXED),
                "event_names": list(self.schema.event_names),
                "columns": list(self.columns),
                "kind": self.kind,
                "threshold": self.threshold,
                "horizon_days": self.horizon_days,
                "estimator": self.estimator,
                "reference": list(self.reference),
            },
            protocol=5,
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(data: bytes, expected_sha256: str | None = None) -> Artifact:
    """The artifact in `data`; ArtifactMismatch if it is not what was recorded or not this schema."""
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise ArtifactMismatch("model artifact bytes do not match their recorded sha256: refused")
    raw = pickle.loads(data)  # the registry's own bytes, checked above
    if not isinstance(raw, dict) or "format" not in raw:
        raise ArtifactMismatch(f"not a churn-risk model artifact of format {ARTIFACT_FORMAT}")
    if raw["format"] != ARTIFACT_FORMAT:
        raise ArtifactMismatch(
            f"model artifact of format {raw['format']}, this code reads format {ARTIFACT_FORMAT} "
            "(format 2 added the explanations' reference): calibrate again"
        )
    if raw["features_version"] != FEATURES_VERSION:
        raise ArtifactMismatch(
            f"model fitted on feature version {raw['features_version']}, this code computes version "
            f"{FEATURES_VERSION}: calibrate again"
        )
    if tuple(raw["fixed"]) != FIXED:
        missing = sorted(set(raw["fixed"]) - set(FIXED))
        extra = sorted(set(FIXED) - set(raw["fixed"]))
        raise ArtifactMismatch(
            f"model fixed features differ from this code's (model only: {missing}, code only: {extra}, "
            "or another order): calibrate again"
        )
    schema = FeatureSchema(FEATURES_VERSION, tuple(raw["event_names"]))
    if tuple(raw["columns"]) != schema.columns:
        raise ArtifactMismatch("model columns are not the ones its event names give: refused")
    reference = tuple(float(v) for v in raw["reference"])
    if len(reference) != len(schema.columns):
        raise ArtifactMismatch(
            f"model reference has {len(reference)} values for {len(schema.columns)} columns: refused"
        )
    return Artifact(
        schema, raw["kind"], float(raw["threshold"]), float(raw["horizon_days"]), raw["estimator"], reference
    )
