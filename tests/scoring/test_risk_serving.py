"""Live scoring with a fitted model, without I/O: the probability-to-score mapping, churn_risk's
hysteresis, contributions (logistic regression closed form; any model by reference), the words,
and an account engine that the model scores at its daily ticks."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from services.scoring.consumer import Scorer, write_state
from services.scoring.engine import AccountEngine
from services.scoring.risk import serving, wording
from services.scoring.risk.artifact import ArtifactMismatch, load, sha256
from services.scoring.risk.features import FEATURES_VERSION, FeatureSchema
from services.scoring.risk.serving import LiveModel
from tests.scoring.events import DEFAULT_CARD, T0, daily_usage, feed, group
from tests.scoring.risk_models import USAGE_28D, usage_model

DAY = 86_400.0


def test_the_score_is_100_times_one_minus_p_and_the_bands_follow_the_threshold() -> None:
    assert serving.score_of(0.0) == 100 and serving.score_of(1.0) == 0 and serving.score_of(0.237) == 76
    threshold = 0.4
    assert serving.band_of(0.4, threshold) == "red" and serving.band_of(0.9, threshold) == "red"
    assert serving.band_of(0.39, threshold) == "yellow"
    assert serving.band_of(serving.AMBER_SHARE * threshold, threshold) == "yellow"
    assert serving.band_of(serving.AMBER_SHARE * threshold - 0.01, threshold) == "green"


def test_churn_risk_is_raised_at_the_threshold_and_cleared_only_well_below_it() -> None:
    threshold, held = 0.5, False
    path = []
    for p in (0.3, 0.49, 0.5, 0.45, 0.41, 0.55, 0.39, 0.45, 0.52):
        held = serving.risk_holds(p, threshold, held)
        path.append(held)
    # raised at 0.5; 0.45 and 0.41 stay above 0.8 x 0.5 = 0.4; cleared at 0.39; raised again at 0.52
    assert path == [False, False, True, True, True, True, False, False, True]


@pytest.mark.parametrize("kind", ["logistic_regression", "gradient_boosting"])
def test_contributions_are_p_minus_p_with_the_column_typical(kind: str) -> None:
    artifact = usage_model(kind)
    rows = np.zeros((3, len(artifact.columns)))
    rows[:, USAGE_28D] = [0.5, 3.0, 5.5]
    p = artifact.probability_of_rows(rows)
    found = serving.contributions(artifact, rows, p)
    assert found.shape == rows.shape
    if kind == "logistic_regression":
        scaler, regression = artifact.estimator.steps[0][1], artifact.estimator.steps[1][1]
        z = (rows - scaler.mean_) / scaler.scale_
        terms = regression.coef_[0] * z  # coef x standardised value
        logit = terms.sum(axis=1) + regression.intercept_[0]
        expected = p[:, None] - 1 / (1 + np.exp(-(logit[:, None] - terms)))
    else:
        expected = np.zeros_like(rows)
        for j in range(rows.shape[1]):
            typical = rows.copy()
            typical[:, j] = artifact.reference[j]
            expected[:, j] = p - artifact.probability_of_rows(typical)
    assert np.allclose(found, expected)
    # Low usage raises the risk, high usage lowers it, and usage is what moves it most.
    assert found[0, USAGE_28D] > 0 > found[2, USAGE_28D]
    assert np.argmax(np.abs(found[0])) == USAGE_28D


def test_words_compare_with_the_typical_account_and_the_accounts_last_change() -> None:
    text = wording.words("events:message", float(np.log1p(3)), float(np.log1p(10)), float(np.log1p(8)), 0.06)
    assert text == (
        "message events in 28 days (decayed): 3, 70% below the typical account's 10 (was 8), "
        "raises the risk 6 points"
    )
    assert wording.words("payment_problem", 1.0, 0.0, None, 0.2) == (
        "payment failed or past due: 1, the typical account's 0, raises the risk 20 points"
    )
    assert "lowers the risk" in wording.words("usage_28d", 4.0, 3.0, None, -0.1)


def test_an_artifact_of_format_2_carries_its_reference_and_a_short_one_is_refused() -> None:
    artifact = usage_model()
    data = artifact.to_bytes()
    assert load(data, sha256(data)).reference == artifact.reference
    short = type(artifact)(artifact.schema, artifact.kind, 0.5, 30.0, artifact.estimator, (1.0,))
    with pytest.raises(ArtifactMismatch, match="reference has 1 values"):
        load(short.to_bytes())


def quiet_then_busy(scorer: Scorer) -> AccountEngine:
    """Busy for 30 days, quiet for 120 (the model's risk rises), busy again for 30 (it falls)."""
    engine = scorer.new_engine("a")
    feed(engine, [group("g", "a", "A", seats=5), *daily_usage("a", 30, 6)])
    engine.advance((T0 + timedelta(days=150)).timestamp())
    feed(engine, daily_usage("a", 30, 6, start=T0 + timedelta(days=151), prefix="v"))
    engine.advance((T0 + timedelta(days=182)).timestamp())
    return engine


def test_the_model_scores_daily_ticks_raises_and_clears_churn_risk_and_explains_each_change() -> None:
    scorer = Scorer(DEFAULT_CARD, 600.0)
    since = (T0 + timedelta(days=10)).timestamp()
    scorer.live_model = LiveModel(7, usage_model(), since)
    engine = quiet_then_busy(scorer)
    asked = list(engine.outputs.model_due)
    assert asked and all(s.at >= since for s in asked)
    assert len({round((s.at - asked[0].at) / DAY, 6) % 1 for s in asked}) == 1  # daily, same second
    scored = scorer.score_with_model([engine])
    assert scored == len(asked) and engine.outputs.model_due == []
    out = engine.take_outputs()
    model_changes = [c for c in out.changes if c.model_version == 7]
    assert model_changes and all(c.cause.at >= since for c in model_changes)
    # Before the model's cut the scorecard scored; after it only the model records changes.
    assert all(c.model_version is None for c in out.changes if c.cause.at < since)
    assert not [c for c in out.changes if c.model_version is None and c.cause.at >= since]
    for change in model_changes:
        p = 1 - change.computed_score / 100
        # the score is rounded: its band is one of those p could have been
        assert change.band in (serving.band_of(p + 0.005, 0.5), serving.band_of(p - 0.005, 0.5))
        assert change.factors and "events in the last 4 weeks" in " ".join(f.detail for f in change.factors)
    assert {c.band for c in model_changes} >= {"green", "red"}
    risk = [(s.status.value, s.evidence) for _, s in out.signals if s.signal_type == "churn_risk"]
    assert [status for status, _ in risk] == ["raised", "cleared"]
    raised = risk[0][1]
    assert raised["model_version"] == 7 and raised["churn_probability"] >= 0.5
    assert any("events in the last 4 weeks" in line for line in raised["top_contributions"])
    # The scorecard's own band signals give way to churn_risk while the model governs.
    replaced = ("entered_red", "band_dropped")
    assert not [s for c, s in out.signals if s.signal_type in replaced and c.at >= since]
    row, record = scorer.row(engine, 0), engine.model_record
    assert record is not None and row.model_version == 7 and row.score == record.score


def model_path(engine: AccountEngine) -> list[tuple[str, float, str, int | None]]:
    return [
        (c.cause.event_id, c.score, c.band, c.model_version) for c in engine.take_outputs().changes
        if c.model_version is not None
    ]


def test_an_engine_scored_in_many_batches_ends_as_one_scored_at_once() -> None:
    """Batch boundaries and restarts do not matter: the ticks' event times fix what a model scores."""
    whole = Scorer(DEFAULT_CARD, 600.0)
    whole.live_model = LiveModel(1, usage_model("gradient_boosting"), T0.timestamp())
    at_once = quiet_then_busy(whole)
    whole.score_with_model([at_once])
    expected = model_path(at_once)
    assert len(expected) > 5

    pieces = Scorer(DEFAULT_CARD, 600.0)
    pieces.live_model = whole.live_model
    engine = pieces.new_engine("a")
    path: list[tuple[str, float, str, int | None]] = []
    events = [group("g", "a", "A", seats=5), *daily_usage("a", 30, 6)]
    for n in range(0, len(events), 17):
        feed(engine, events[n : n + 17])
        pieces.score_with_model([engine])
        path += model_path(engine)
    for day in range(30, 151, 9):
        engine.advance((T0 + timedelta(days=day)).timestamp())
        pieces.score_with_model([engine])
        path += model_path(engine)
        # ...and through a stored state and back, as a restart or a partition move does.
        engine = pieces.decode("a", write_state(engine.encode()))
    feed(engine, daily_usage("a", 30, 6, start=T0 + timedelta(days=151), prefix="v"))
    engine.advance((T0 + timedelta(days=182)).timestamp())
    pieces.score_with_model([engine])
    path += model_path(engine)
    assert path == expected
    assert engine.model_record == at_once.model_record and engine.emitted == at_once.emitted


def test_every_column_of_a_fitted_schema_has_its_own_words() -> None:
    schema = FeatureSchema(FEATURES_VERSION, ("message", "unfriend"))
    for column in schema.columns:
        text = wording.words(column, 0.5, 0.2, None, 0.1)
        assert "_" not in text.split(":")[0], (column, text)  # a label, not the raw column name
    assert wording.words("share:unfriend", 0.3, 0.1, None, 0.1).startswith(
        "unfriend events' share of the month's usage: 0.3"
    )
