"""Exponentially time-decayed counters on event time: O(1) state per measure.

A counter holds `value` as of `as_of`. Its value at a later time t is
`value * 2 ** (-(t - as_of) / half_life)`. An event older than `as_of` (out of order)
adds its own decayed weight instead, so the result does not depend on arrival order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class DecayedCounter:
    value: float
    as_of: datetime

    def at(self, moment: datetime, half_life_days: float) -> float:
        """The counter's value seen from `moment` (never in the past of `as_of`)."""
        elapsed_days = (moment - self.as_of).total_seconds() / SECONDS_PER_DAY
        if elapsed_days <= 0:
            return self.value
        return self.value * float(2.0 ** (-elapsed_days / half_life_days))

    def add(self, moment: datetime, half_life_days: float, weight: float = 1.0) -> DecayedCounter:
        if moment >= self.as_of:
            return DecayedCounter(self.at(moment, half_life_days) + weight, moment)
        late_days = (self.as_of - moment).total_seconds() / SECONDS_PER_DAY
        return DecayedCounter(self.value + weight * 2.0 ** (-late_days / half_life_days), self.as_of)


def rate_per_day(counter_value: float, half_life_days: float, age_days: float | None = None) -> float:
    """Events per day of a steady stream that would bring the counter to `counter_value`.

    `age_days`, the time since the counter's first event, corrects the warm-up bias: a
    counter a few half-lives old has not yet filled up to its steady level, and comparing
    a young long-memory counter with a short-memory one would read as growth.
    """
    filled = 1.0
    if age_days is not None and age_days > 0:
        filled = 1.0 - float(2.0 ** (-age_days / half_life_days))
    return counter_value * math.log(2) / (half_life_days * filled)
