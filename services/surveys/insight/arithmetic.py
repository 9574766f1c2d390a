"""Survey arithmetic on score histograms: NPS, CSAT and CES, as CS teams define them.

Every function takes `{score: number of responses}` so the database only has to count
(GROUP BY score) and the definitions of promoter, satisfied or easy live here alone.
A result with no responses has `None` for its figure: "no data" is not a score of 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.events import SURVEY_SCORE_RANGES, SurveyType

ScoreCounts = Mapping[int, int]

NPS_RANGE = SURVEY_SCORE_RANGES[SurveyType.NPS]
CSAT_RANGE = SURVEY_SCORE_RANGES[SurveyType.CSAT]
CES_RANGE = SURVEY_SCORE_RANGES[SurveyType.CES]


@dataclass(frozen=True)
class Nps:
    responses: int
    promoters: int  # 9-10
    passives: int  # 7-8
    detractors: int  # 0-6
    nps: float | None  # % promoters - % detractors, -100..100


@dataclass(frozen=True)
class Csat:
    responses: int
    satisfied: int  # 4-5
    csat: float | None  # % satisfied, 0..100


@dataclass(frozen=True)
class Ces:
    responses: int
    easy: int  # 5-7 ("made it easy": agree)
    mean: float | None  # 1..7
    easy_share: float | None  # % easy, 0..100


def _checked(counts: ScoreCounts, valid: range, survey: str) -> int:
    for score, count in counts.items():
        if score not in valid:
            raise ValueError(f"{survey} score {score} is outside {valid.start}..{valid.stop - 1}")
        if count < 0:
            raise ValueError(f"{survey} score {score} has a negative count {count}")
    return sum(counts.values())


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else part * 100 / whole


def nps(counts: ScoreCounts) -> Nps:
    total = _checked(counts, NPS_RANGE, "NPS")
    promoters = sum(n for score, n in counts.items() if score >= 9)
    detractors = sum(n for score, n in counts.items() if score <= 6)
    return Nps(
        responses=total,
        promoters=promoters,
        passives=total - promoters - detractors,
        detractors=detractors,
        nps=None if total == 0 else (promoters - detractors) * 100 / total,
    )


def csat(counts: ScoreCounts) -> Csat:
    total = _checked(counts, CSAT_RANGE, "CSAT")
    satisfied = sum(n for score, n in counts.items() if score >= 4)
    return Csat(responses=total, satisfied=satisfied, csat=_percent(satisfied, total))


def ces(counts: ScoreCounts) -> Ces:
    total = _checked(counts, CES_RANGE, "CES")
    easy = sum(n for score, n in counts.items() if score >= 5)
    mean = None if total == 0 else sum(score * n for score, n in counts.items()) / total
    return Ces(responses=total, easy=easy, mean=mean, easy_share=_percent(easy, total))
