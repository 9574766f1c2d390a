"""Insight over score histograms: the figures per group, periods and month-on-month trend. Pure.

Every group says how many responses it rests on and which period it covers; a figure
without responses is None ("no data"), never 0. The headline of each survey type is NPS,
CSAT (% of 4-5) or the CES mean (with the % of 5-7 beside it); `change` is a month's
headline minus the previous month's that has data, so a gap month does not fake a trend.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.surveys.insight.arithmetic import ces, csat, nps
from shared.events import SurveyType

Counts = Mapping[int, int]


def figures(survey_type: SurveyType, counts: Counts) -> dict[str, Any]:
    if survey_type is SurveyType.NPS:
        n = nps(counts)
        return {"responses": n.responses, "nps": _round(n.nps), "promoters": n.promoters,
                "passives": n.passives, "detractors": n.detractors}
    if survey_type is SurveyType.CSAT:
        c = csat(counts)
        return {"responses": c.responses, "csat": _round(c.csat), "satisfied": c.satisfied}
    e = ces(counts)
    return {"responses": e.responses, "ces_mean": _round(e.mean), "easy_share": _round(e.easy_share),
            "easy": e.easy}


def headline(survey_type: SurveyType, counts: Counts) -> float | None:
    if survey_type is SurveyType.NPS:
        return nps(counts).nps
    if survey_type is SurveyType.CSAT:
        return csat(counts).csat
    return ces(counts).mean


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def merge(rows: Iterable[tuple[Any, int, int]]) -> dict[Any, dict[int, int]]:
    """(group key, score, count) rows as {group key: {score: count}}."""
    grouped: dict[Any, dict[int, int]] = defaultdict(dict)
    for key, score, count in rows:
        grouped[key][score] = grouped[key].get(score, 0) + count
    return dict(grouped)


def total(histograms: Iterable[Counts]) -> dict[int, int]:
    combined: dict[int, int] = defaultdict(int)
    for counts in histograms:
        for score, count in counts.items():
            combined[score] += count
    return dict(combined)


def month_key(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m}"


def month_bounds(key: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(key, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1)
    return start, end


@dataclass(frozen=True)
class Change:
    previous_key: str | None
    change: float | None


def month_changes(survey_type: SurveyType, by_month: Mapping[str, Counts]) -> dict[str, Change]:
    """Each month's headline minus the latest earlier month with data."""
    changes: dict[str, Change] = {}
    previous: tuple[str, float] | None = None
    for key in sorted(by_month):
        value = headline(survey_type, by_month[key])
        if value is None:
            changes[key] = Change(None, None)
            continue
        if previous is None:
            changes[key] = Change(None, None)
        else:
            changes[key] = Change(previous[0], round(value - previous[1], 2))
        previous = (key, value)
    return changes
