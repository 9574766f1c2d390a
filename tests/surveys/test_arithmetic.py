"""NPS, CSAT and CES on known answers, including the edges a dashboard hits first."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.surveys.insight.arithmetic import Ces, Csat, Nps, ces, csat, nps


def test_nps_with_no_responses_is_none_not_zero() -> None:
    assert nps({}) == Nps(responses=0, promoters=0, passives=0, detractors=0, nps=None)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({7: 3, 8: 2}, Nps(5, 0, 5, 0, 0.0)),  # all passives
        ({9: 1, 10: 4}, Nps(5, 5, 0, 0, 100.0)),  # all promoters
        ({0: 1, 3: 1, 6: 2}, Nps(4, 0, 0, 4, -100.0)),  # all detractors
        ({10: 2, 7: 1, 6: 1}, Nps(4, 2, 1, 1, 25.0)),
        ({9: 1, 8: 1, 5: 2}, Nps(4, 1, 1, 2, -25.0)),
        ({10: 1, 0: 1}, Nps(2, 1, 0, 1, 0.0)),  # one of each extreme cancels out
        ({9: 1, 7: 2}, Nps(3, 1, 2, 0, 100 / 3)),
        ({6: 1, 9: 0}, Nps(1, 0, 0, 1, -100.0)),  # a zero count is no response
    ],
    ids=["passives", "promoters", "detractors", "mix+25", "mix-25", "extremes", "third", "zero-count"],
)
def test_nps_known_answers(counts: dict[int, int], expected: Nps) -> None:
    assert nps(counts) == expected


def test_nps_boundaries_between_groups() -> None:
    # 6 is the best detractor, 7 the worst passive, 8 the best passive, 9 the worst promoter.
    result = nps({6: 1, 7: 1, 8: 1, 9: 1})
    assert (result.detractors, result.passives, result.promoters) == (1, 2, 1)
    assert result.nps == 0.0


def test_csat_is_the_share_of_four_and_five() -> None:
    assert csat({}) == Csat(responses=0, satisfied=0, csat=None)
    assert csat({5: 2, 4: 1, 3: 1}) == Csat(responses=4, satisfied=3, csat=75.0)
    assert csat({1: 3, 2: 1, 3: 6}).csat == 0.0
    assert csat({4: 7}).csat == 100.0


def test_ces_reports_mean_and_share_of_five_to_seven() -> None:
    assert ces({}) == Ces(responses=0, easy=0, mean=None, easy_share=None)
    assert ces({7: 1, 5: 1, 3: 1, 1: 1}) == Ces(responses=4, easy=2, mean=4.0, easy_share=50.0)
    assert ces({4: 2}) == Ces(responses=2, easy=0, mean=4.0, easy_share=0.0)


@pytest.mark.parametrize(
    ("function", "counts", "names"),
    [(nps, {11: 1}, "NPS score 11"), (nps, {-1: 1}, "NPS score -1"), (csat, {0: 1}, "CSAT score 0"),
     (csat, {6: 1}, "CSAT score 6"), (ces, {8: 1}, "CES score 8"), (nps, {5: -1}, "negative count")],
)
def test_out_of_range_histograms_are_refused(
    function: Callable[[dict[int, int]], object], counts: dict[int, int], names: str
) -> None:
    with pytest.raises(ValueError, match=names):
        function(counts)
