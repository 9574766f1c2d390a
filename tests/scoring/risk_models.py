"""Small fitted churn-risk models for tests: real scikit-learn fits on synthetic rows of this
code's feature schema, where the risk is low 4-week usage (so a test can drive it with events)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.scoring.risk.artifact import Artifact
from services.scoring.risk.features import FEATURES_VERSION, FIXED, FeatureSchema

USAGE_28D = FIXED.index("usage_28d")


def usage_model(kind: str = "logistic_regression", threshold: float = 0.5, seed: int = 0) -> Artifact:
    """p(churn) high below about 20 events in 4 weeks (log1p 3), low above."""
    schema = FeatureSchema(FEATURES_VERSION, ("feature used",))
    rng = np.random.default_rng(seed)
    rows = np.zeros((600, len(schema.columns)))
    rows[:, USAGE_28D] = rng.uniform(0.0, 6.0, 600)
    rows[:, len(FIXED)] = rng.uniform(0.0, 4.0, 600)  # "feature used": noise
    labels = (rows[:, USAGE_28D] + rng.normal(0, 0.5, 600) < 3.0).astype(float)
    estimator = (
        make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1_000))
        if kind == "logistic_regression"
        else HistGradientBoostingClassifier(max_iter=50, random_state=seed)
    )
    estimator.fit(rows, labels)
    reference = tuple(float(v) for v in np.median(rows, axis=0))
    return Artifact(schema, kind, threshold, 30.0, estimator, reference)
