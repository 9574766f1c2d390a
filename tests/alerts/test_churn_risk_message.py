"""A churn_risk signal as the live model raises it, rendered for a CSM: the probability as a
percentage, the model's reasons in words one after another, and a next step of its own."""

from __future__ import annotations

from datetime import timedelta

from services.alerts.render.messages import AlertView, evidence_lines, render_email, render_slack
from services.alerts.render.playbook import BUILT_IN
from services.scoring.consumer import Scorer
from services.scoring.risk.serving import LiveModel
from tests.scoring.events import DEFAULT_CARD, T0, daily_usage, feed, group
from tests.scoring.risk_models import usage_model


def test_a_real_churn_risk_signal_reads_in_words() -> None:
    scorer = Scorer(DEFAULT_CARD, 600.0)
    scorer.live_model = LiveModel(3, usage_model(), (T0 + timedelta(days=10)).timestamp())
    engine = scorer.new_engine("acme")
    feed(engine, [group("g", "acme", "Acme", seats=5), *daily_usage("acme", 30, 6)])
    engine.advance((T0 + timedelta(days=150)).timestamp())
    scorer.score_with_model([engine])
    [(_, signal)] = [s for s in engine.take_outputs().signals if s[1].signal_type == "churn_risk"]
    lines = dict(evidence_lines(signal.evidence))
    assert lines["Churn probability"].endswith("%") and lines["Alert threshold"] == "50%"
    assert lines["Model version"] == "3"
    assert lines["Why"].startswith("events in the last 4 weeks (decayed): ")
    assert "below the typical account's" in lines["Why"]
    view = AlertView(
        alert_id=1,
        account_id="acme",
        account_name="Acme Corp",
        signal=signal,
        occurred_at=T0 + timedelta(days=150),
        account_url="https://crm.example.com/accounts/acme",
        next_step=BUILT_IN["churn_risk"],
    )
    for text in (str(render_slack(view)), render_email(view).text):
        assert "churn risk" in text and "typical account" in text and "champion" in text
