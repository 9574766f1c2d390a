"""A score history as SVG geometry, drawn on the server (no script, no charting library): the
template writes the elements, so every label is escaped like any other text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 12, 28


@dataclass(frozen=True)
class Point:
    at: datetime
    score: float
    band: str
    reason: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    band: str
    title: str  # shown on hover: when, the score, why


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    line: str  # the polyline's `points`
    markers: list[Marker]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    plot_left: int
    plot_right: int
    plot_bottom: int


def score_chart(points: list[Point]) -> Chart | None:
    """The chart of `points` (any order), scores 0-100 on the y axis, event time on the x axis;
    None without points."""
    if not points:
        return None
    ordered = sorted(points, key=lambda p: p.at)
    start, end = ordered[0].at.timestamp(), ordered[-1].at.timestamp()
    span = end - start
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(moment: datetime) -> float:
        if span == 0:
            return LEFT + plot_width / 2
        return round(LEFT + (moment.timestamp() - start) / span * plot_width, 1)

    def y_of(score: float) -> float:
        return round(TOP + (100 - max(0.0, min(100.0, score))) / 100 * plot_height, 1)

    markers = [Marker(x_of(p.at), y_of(p.score), p.band,
                      f"{p.at:%Y-%m-%d %H:%M} · {p.score:.0f} ({p.band}) · {p.reason}") for p in ordered]
    x_ticks = [Tick(x_of(ordered[0].at), f"{ordered[0].at:%b %d}")]
    if span > 0:
        x_ticks.append(Tick(x_of(ordered[-1].at), f"{ordered[-1].at:%b %d}"))
    return Chart(
        width=WIDTH, height=HEIGHT,
        line=" ".join(f"{m.x},{m.y}" for m in markers),
        markers=markers,
        y_ticks=[Tick(y_of(s), str(s)) for s in (0, 25, 50, 75, 100)],
        x_ticks=x_ticks,
        plot_left=LEFT, plot_right=WIDTH - RIGHT, plot_bottom=HEIGHT - BOTTOM,
    )
