"""The hand-written hot paths give what the contracts they stand in for give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.scoring.consumer import Scorer
from services.scoring.model import Model, _usage_payload, moment
from shared.account_facts import TRAIT_TIMES_KEY, merge_traits
from shared.events import EventType, HealthScorePayload, UsagePayload
from tests.scoring.events import DEFAULT_CARD, T0, daily_usage, group, nps, ticket
from tests.scoring.events import run as run_engine


@pytest.mark.parametrize("payload", [
    {"event": "Report Built"}, {"event": "x", "properties": {"a": 1}}, {"event": "", "anonymous_id": "a"},
    {"event": "x", "anonymous_id": None, "other": 1}, {}, {"event": 5}, {"event": None},
    {"event": "x", "properties": None}, {"event": "x", "properties": [1]}, {"event": "x", "anonymous_id": 3},
])
def test_usage_payload_reads_as_the_model(payload: dict[str, Any]) -> None:
    try:
        model = UsagePayload.model_validate(payload)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as raised:
            _usage_payload(payload)
        assert str(raised.value) == str(exc)
        return
    assert _usage_payload(payload) == (model.event, model.properties)


def reference(steps: list[tuple[dict[str, Any], float]]) -> dict[str, list[Any]]:
    """The shared rule on an ISO-timed document, as scoring applied it before."""
    document: dict[str, Any] = {TRAIT_TIMES_KEY: {}}
    for incoming, t in steps:
        document = merge_traits(document, incoming, moment(t))
    times = document.pop(TRAIT_TIMES_KEY)
    return {k: [v, datetime.fromisoformat(times[k]).timestamp()] for k, v in document.items()}


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(
    st.dictionaries(st.sampled_from(["plan", "seats", "mrr"]), st.integers(0, 5), max_size=3),
    st.sampled_from([1.7e9, 1.7e9 + 0.000001, 1.7e9 + 1.5, 1.7e9 - 86_400.25, 1.7e9 + 0.1234567]),
), max_size=8))
def test_traits_merge_as_the_shared_rule(steps: list[tuple[dict[str, Any], float]]) -> None:
    model = Model()
    for incoming, t in steps:
        model.merge_traits(incoming, datetime.fromtimestamp(t, UTC))
    assert model.traits == reference(steps)


def test_health_score_payloads_written_by_hand_are_the_models_dump() -> None:
    # Scoring writes HealthScorePayload's JSON directly (one per change, on the hot path):
    # it must stay exactly what the model would dump, as consumers read it with the model.
    events = [group("g", "a", "Acme", T0, plan="pro", seats=10),
              *daily_usage("a", days=20, per_day=4, users=3),
              nps("n", "a", "r-1", 2, T0 + timedelta(days=21), comment="too slow"),
              ticket("t", "a", "T-1", "open", T0 + timedelta(days=22), priority="urgent")]
    engine = run_engine(events)
    _, outputs = Scorer(DEFAULT_CARD, 600.0).outputs(engine)
    health = [o.payload for o in outputs if o.type is EventType.HEALTH_SCORE]
    assert len(health) > 1
    assert any(p["previous_score"] is not None for p in health)
    for payload in health:
        assert HealthScorePayload.model_validate(payload).model_dump(mode="json") == payload
