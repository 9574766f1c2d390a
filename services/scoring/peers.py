"""How busy an account is against its segment's peers on the same partition. Pure: no I/O.

Every other measure compares an account with its own past, so a steady, quiet account looks
healthy. This one places the account's product usage level (a decayed event count) among the
accounts of its segment.

Kept per partition, because scoring partitions accounts by key: a partition's accounts are a
random sample of all accounts, so their distribution is the population's, without state shared
across instances. The table is:
  * bounded: per segment at most `PEER_SAMPLE` accounts, each with its latest level; once
    full, an account enters only by the hash of its id, in place of the largest (a bottom-k
    sample: uniform over the segment's accounts, whatever their activity);
  * cheap: decayed counters with one half-life all decay at the same rate, so the order of
    `log2(value) + as_of / half_life` never changes between events. An account's level is
    stored once as that key and compared without decaying anything (a bisection);
  * stable within a day: accounts are placed against a *reference*, the sorted keys frozen at
    the first evaluation of each UTC day of event time (then idle and churned accounts leave).
    Within a day, a score does not depend on which peer's event was folded first;
  * persisted with the partition (`scoring_partitions.peers`, in the batch's transaction) and
    rebuilt by a replay of the partition, which folds the same events in the same order.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from services.scoring.model import DAY, USAGE_BASELINE_HALF_LIFE, Model, stable_hash

PEER_SAMPLE = 256  # accounts per segment in the table
PEER_FORGET = 60 * DAY  # an account without usage this long leaves the peers
# The level is the 28-day half-life usage counter (`Model.u_base`). A young account's counter
# has not filled up yet, and it is placed all the same: "used less than its peers so far" is
# what a new account that will not renew looks like (on ChurnSim, most churn comes at the
# first renewal), and it is what a naive count of recent events says too.
LEVEL_HALF_LIFE = USAGE_BASELINE_HALF_LIFE
NO_USAGE = -1e12  # the key of an account with no usage counter (JSON has no -inf)
PEERS_VERSION = 1


def level_key(model: Model) -> float:
    """The account's usage level as a key whose order among accounts does not change with time."""
    counter = model.u_base
    if counter is None or counter[0] <= 0:
        return NO_USAGE
    return math.log2(counter[0]) + counter[1] / LEVEL_HALF_LIFE


def per_week(key: float, now: float) -> float:
    """The events a week of a steady stream whose decayed count has this key at `now`."""
    if key <= NO_USAGE:
        return 0.0
    value = math.exp2(min(key - now / LEVEL_HALF_LIFE, 60.0))
    return value * math.log(2) / (LEVEL_HALF_LIFE / DAY) * 7


class PeerTable:
    """One partition's peers: per segment, a sample of accounts' level keys, and its daily reference."""

    __slots__ = ("day", "live", "reference", "thresholds")

    def __init__(self) -> None:
        # segment -> account id -> [hash, level key, last usage]
        self.live: dict[str, dict[str, list[float]]] = {}
        self.reference: dict[str, list[float]] = {}  # segment -> sorted level keys
        self.day: int | None = None  # the UTC day (of event time) the reference was frozen
        self.thresholds: dict[str, float] = {}  # segment -> largest hash kept, once full

    def place(self, account_id: str, segment: str, model: Model, now: float) -> list[Any] | None:
        """Record the account's level, and read its place among the segment's peers:
        [percentile 0-1, its events a week, the median's events a week, peers], or None when
        it has no usage or churned, or there is no reference yet."""
        day = int(now // DAY)
        if self.day is None or day > self.day:
            self._freeze(day, now)
        key = level_key(model)
        if model.churned or model.first_usage is None:
            self._remove(account_id)
            return None
        self._record(account_id, segment, key, model.last_usage or now)
        reference = self.reference.get(segment)
        if not reference:
            return None
        below = bisect.bisect_left(reference, key)
        ties = bisect.bisect_right(reference, key, lo=below) - below
        count = len(reference)
        middle = reference[(count - 1) // 2]  # the lower median: never between "none" and a level
        median = per_week(middle, now)
        return [(below + ties / 2) / count, per_week(key, now), median, count]

    def _record(self, account_id: str, segment: str, key: float, last_usage: float) -> None:
        accounts = self.live.get(segment)
        if accounts is None:
            accounts = self.live[segment] = {}
        known = accounts.get(account_id)
        if known is not None:
            accounts[account_id] = [known[0], key, last_usage]
            return
        self._remove(account_id)  # it may have moved from another segment
        h = float(stable_hash(account_id))
        if len(accounts) < PEER_SAMPLE:
            accounts[account_id] = [h, key, last_usage]
            self.thresholds.pop(segment, None)
            return
        threshold = self.thresholds.get(segment)
        if threshold is None:
            threshold = self.thresholds[segment] = max(v[0] for v in accounts.values())
        if h >= threshold:
            return  # not in the sample: placed against it, not part of it
        accounts[account_id] = [h, key, last_usage]
        del accounts[max(accounts, key=lambda a: accounts[a][0])]
        self.thresholds[segment] = max(v[0] for v in accounts.values())

    def _remove(self, account_id: str) -> None:
        for accounts in self.live.values():
            if accounts.pop(account_id, None) is not None:
                return

    def _freeze(self, day: int, now: float) -> None:
        horizon = now - PEER_FORGET
        for segment, accounts in self.live.items():
            for gone in [a for a, v in accounts.items() if v[2] < horizon]:
                del accounts[gone]
            self.reference[segment] = sorted(v[1] for v in accounts.values())
        self.day = day

    # --- persistence ------------------------------------------------------------------------

    def encode(self) -> list[Any]:
        return [PEERS_VERSION, self.day, self.live, self.reference, self.thresholds]

    @classmethod
    def decode(cls, raw: list[Any] | None) -> PeerTable:
        table = cls()
        if raw is None:
            return table
        version, table.day, table.live, table.reference, table.thresholds = raw
        if version != PEERS_VERSION:
            raise ValueError(f"peer table version {version} is not {PEERS_VERSION}: replay to rebuild")
        return table
