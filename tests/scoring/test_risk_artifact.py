"""The model artifact (schema checked on load) and the registry's rollback order. Pure."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from services.scoring.model_cli import previous_version
from services.scoring.risk.artifact import Artifact, ArtifactMismatch, load, sha256
from services.scoring.risk.features import FEATURES_VERSION, FIXED, FeatureSchema, Snapshot


def artifact() -> Artifact:
    schema = FeatureSchema(FEATURES_VERSION, ("invite sent", "report built"))
    width = len(schema.columns)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, width))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(float)
    reference = tuple(float(v) for v in np.median(x, axis=0))
    return Artifact(schema, "logistic_regression", 0.4, 30.0, LogisticRegression().fit(x, y), reference)


def snap(usage: float) -> Snapshot:
    fixed = tuple(usage if i == 0 else 0.0 for i in range(len(FIXED)))
    return Snapshot(0.0, fixed, {"report built": 1.0, "unlisted": 2.0})


def test_an_artifact_round_trips_and_scores_snapshots() -> None:
    original = artifact()
    data = original.to_bytes()
    loaded = load(data, sha256(data))
    assert loaded.columns == original.columns and loaded.threshold == 0.4
    low, high = loaded.probability([snap(-2.0), snap(2.0)])
    assert 0 <= low < high <= 1
    assert list(loaded.probability([snap(1.0)])) == list(original.probability([snap(1.0)]))


def test_an_artifact_of_another_schema_or_other_bytes_is_refused() -> None:
    data = artifact().to_bytes()
    with pytest.raises(ArtifactMismatch, match="sha256"):
        load(data, sha256(b"other"))
    raw = pickle.loads(data)
    older = pickle.dumps(raw | {"features_version": FEATURES_VERSION + 1})
    with pytest.raises(ArtifactMismatch, match=f"feature version {FEATURES_VERSION + 1}"):
        load(older)
    renamed = pickle.dumps(raw | {"fixed": [*FIXED[:-1], "payment_late"]})
    with pytest.raises(ArtifactMismatch, match="payment_late"):
        load(renamed)


def test_rollback_returns_to_the_version_active_before() -> None:
    def log(*entries: tuple[int, str]) -> list[dict[str, object]]:
        return [{"version": v, "action": a} for v, a in entries]

    assert previous_version([]) is None
    assert previous_version(log((1, "activate"))) is None
    assert previous_version(log((1, "activate"), (2, "activate"))) == 1
    assert previous_version(log((1, "activate"), (2, "activate"), (3, "activate"), (2, "rollback"))) == 1
    assert previous_version(log((1, "activate"), (2, "activate"), (1, "rollback"))) is None
    assert previous_version(log((1, "activate"), (2, "activate"), (1, "rollback"), (3, "activate"))) == 1
