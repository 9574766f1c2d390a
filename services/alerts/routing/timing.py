"""Local-time arithmetic for recipients: quiet hours and the daily digest's moment. Pure.

Times are wall times in the recipient's IANA zone, so "quiet from 20:00 to 08:00" means the
same to a CSM in Berlin as in San Francisco, across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.alerts.routing.config import QuietHours


def local(now: datetime, timezone: str) -> datetime:
    return now.astimezone(ZoneInfo(timezone))


def _at(day: date, when: time, timezone: str) -> datetime:
    return datetime.combine(day, when, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def quiet_until(now: datetime, timezone: str, quiet: QuietHours | None) -> datetime | None:
    """When the quiet period `now` falls in ends (UTC), or None if `now` is not quiet."""
    if quiet is None or quiet.start == quiet.end:
        return None
    here = local(now, timezone)
    moment = here.time().replace(tzinfo=None)
    if quiet.start < quiet.end:  # same day, e.g. 12:00-13:00
        if quiet.start <= moment < quiet.end:
            return _at(here.date(), quiet.end, timezone)
        return None
    # spans midnight, e.g. 20:00-08:00
    if moment >= quiet.start:
        return _at(here.date() + timedelta(days=1), quiet.end, timezone)
    if moment < quiet.end:
        return _at(here.date(), quiet.end, timezone)
    return None


def latest_digest_moment(now: datetime, timezone: str, digest_time: time) -> tuple[date, datetime]:
    """The most recent local `digest_time` at or before `now`: (its local date, its UTC instant).

    A digest covers what arrived before that moment, so something raised at 10:00 waits for
    the next morning's digest instead of triggering one of its own.
    """
    here = local(now, timezone)
    day = here.date()
    moment = _at(day, digest_time, timezone)
    if moment > now:
        day -= timedelta(days=1)
        moment = _at(day, digest_time, timezone)
    return day, moment
