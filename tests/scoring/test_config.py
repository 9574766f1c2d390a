"""The scorecard file: the shipped default loads, and a bad file is refused naming the bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.scoring.config import DEFAULT_SCORECARD, ScorecardError, load_scorecard, parse_scorecard

MINIMAL = """
segments:
  - name: everyone
    measures:
      recency: {weight: 1}
"""


def test_the_default_scorecard_loads_with_its_segments() -> None:
    card = load_scorecard(None)
    assert [s.name for s in card.segments] == ["onboarding", "enterprise", "enterprise-plan", "standard"]
    assert card.bands.red_below == 40 and card.bands.green_from == 70
    assert card.segments[1].measures == card.segments[2].measures  # a YAML anchor, shared
    assert load_scorecard(DEFAULT_SCORECARD) == card


def test_a_minimal_scorecard_takes_the_documented_defaults() -> None:
    card = parse_scorecard(MINIMAL)
    assert card.bands.hysteresis == 3
    assert card.segments[0].measures.recency is not None
    assert card.segments[0].measures.recency.zero_days == 30
    assert card.signals.usage_decline.below_ratio == 0.6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL.replace("weight: 1", "wieght: 1"),
            "segments[0].measures.recency.wieght: Extra inputs are not permitted",
        ),
        (
            MINIMAL.replace("weight: 1", "weight: -2"),
            "segments[0].measures.recency.weight: Input should be greater than 0",
        ),
        (
            MINIMAL.replace("weight: 1", "weight: 1, full_days: 40"),
            "segments[0].measures.recency: Value error, zero_days must be greater than full_days",
        ),
        (
            MINIMAL + "bands: {red_below: 80, green_from: 70}\n",
            "bands: Value error, green_from must be greater than red_below",
        ),
        (
            MINIMAL.replace("    measures:", "    when: {plans: [pro]}\n    measures:"),
            "the last segment must have no `when` rule",
        ),
        (
            MINIMAL + "signals: {disabled: [entred_red]}\n",
            "signals.disabled names unknown signal types ['entred_red']",
        ),
        (
            MINIMAL + "signals: {usage_decline: {below_ratio: 1.5}}\n",
            "signals.usage_decline.below_ratio: Input should be less than 1",
        ),
        ("segments: []\n", "segments: List should have at least 1 item"),
        (
            "segments:\n  - name: x\n    measures: {}\n",
            "segments[0].measures: Value error, a segment needs at least one measure",
        ),
        ("segments: [\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping at the top level"),
    ],
)
def test_an_invalid_scorecard_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ScorecardError) as raised:
        parse_scorecard(text, "my-card.yaml")
    assert str(raised.value).startswith("my-card.yaml")
    assert message in str(raised.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match=r"missing\.yaml: cannot read the scorecard"):
        load_scorecard(tmp_path / "missing.yaml")
