"""Who hears about an alert, on which channel, and when. Pure: facts and config in, a plan out.

For each alert the plan names, per recipient, the channels and addresses to notify now (or
at the end of their quiet hours), or that the alert belongs in their daily digest, or why
they are left out (below the severity they asked for). Targets are fixed when the alert is
recorded (as outbox rows), so a later change of owner never re-routes or repeats it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.alerts.routing.config import (
    Channel,
    Delivery,
    Fallback,
    Person,
    QuietHours,
    RoutingConfig,
    Scope,
    Segment,
    looks_like_email,
    rank,
    valid_timezone,
)
from services.alerts.routing.timing import quiet_until
from shared.account_facts import AccountFacts
from shared.events import Severity

# The Slack webhook URL is a credential: it is never stored as a recipient (and so never
# shown by the alerts API). A delivery names the channel instead, or this placeholder for
# the default webhook's own channel.
SLACK_WEBHOOK_CHANNEL = "webhook-default-channel"


class Role(StrEnum):
    OWNER = "owner"
    TEAM = "team"
    FALLBACK = "fallback"
    ESCALATION = "escalation"


class StoredPreferences(BaseModel):
    """A recipient's own choices (the preferences API); anything left out follows the YAML defaults."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] | None = Field(default=None, min_length=1)
    min_severity: Severity | None = None
    delivery: Delivery | None = None
    scope: Scope | None = None
    segments: list[str] | None = Field(default=None, description="with scope team: only these segments")
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    no_quiet_hours: bool = Field(default=False, description="opt out of the default quiet hours")
    digest_time: time | None = None
    slack_user: str | None = Field(default=None, max_length=40)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return valid_timezone(value) if value else value


@dataclass(frozen=True)
class Preferences:
    """What actually applies to one recipient: their choices over the directory over the defaults."""

    channels: tuple[Channel, ...]
    min_severity: Severity
    delivery: Delivery
    scope: Scope
    segments: tuple[str, ...]
    timezone: str
    quiet_hours: QuietHours | None
    digest_time: time
    slack_user: str | None


def effective_preferences(
    config: RoutingConfig, stored: StoredPreferences | None, person: Person | None = None
) -> Preferences:
    d = config.defaults
    s = stored or StoredPreferences()
    return Preferences(
        channels=tuple(s.channels or d.channels),
        min_severity=s.min_severity or d.min_severity,
        delivery=s.delivery or d.delivery,
        scope=s.scope or Scope.OWNED,
        segments=tuple(s.segments or ()),
        timezone=s.timezone or (person.timezone if person else None) or d.timezone,
        quiet_hours=None if s.no_quiet_hours else (s.quiet_hours or d.quiet_hours),
        digest_time=s.digest_time or d.digest_time,
        slack_user=s.slack_user or (person.slack_user if person else None),
    )


@dataclass(frozen=True)
class Capabilities:
    """Which ways out exist in this deployment."""

    slack_api: bool  # a bot token: any channel or a member's DM, threads, verifiable sends
    slack_webhook: bool  # the default incoming webhook
    webhook_channels: frozenset[str] = frozenset()  # channels with their own webhook in the YAML
    default_email: str | None = None

    def slack_reaches(self, channel: str) -> bool:
        return self.slack_api or self.slack_webhook or channel in self.webhook_channels


@dataclass(frozen=True)
class Target:
    channel: Channel
    address: str  # Slack channel, Slack member id (DM), or email address
    mention: str | None = None  # Slack member to @-mention in a channel message


@dataclass(frozen=True)
class Notice:
    """One recipient's part in an alert."""

    recipient: str  # key: an email (lowercased), or slack:<channel or member>
    role: Role
    targets: tuple[Target, ...] = ()  # notify these (at `not_before` if set)
    digest: bool = False  # or put it in the recipient's daily digest
    not_before: datetime | None = None  # end of the recipient's quiet hours
    timezone: str = "UTC"
    digest_time: time = time(9, 0)
    skipped: str | None = None  # why this recipient gets nothing

    @property
    def immediate(self) -> bool:
        return bool(self.targets) and not self.digest and self.skipped is None


@dataclass(frozen=True)
class AlertFacts:
    """What routing needs to know about the alert itself."""

    severity: Severity
    segment: str | None  # the signal's segment (from scoring), if any
    force_digest: bool = False  # e.g. a re-raise inside the cooldown


def resolve_segment(config: RoutingConfig, signal_segment: str | None, facts: AccountFacts) -> Segment | None:
    """The configured segment of an account: the signal's own segment if configured by name,
    else the first whose conditions the account's facts meet."""
    named = config.segment(signal_segment)
    if named is not None:
        return named
    for segment in config.segments:
        if segment.match is not None and _matches(segment, signal_segment, facts):
            return segment
    return None


def _matches(segment: Segment, signal_segment: str | None, facts: AccountFacts) -> bool:
    m = segment.match
    assert m is not None
    checks: list[bool] = []
    if m.segments:
        checks.append(signal_segment in m.segments)
    if m.plans:
        checks.append(facts.plan is not None and facts.plan.lower() in {p.lower() for p in m.plans})
    for bound, value, minimum in (
        (m.min_mrr, facts.mrr, True),
        (m.max_mrr, facts.mrr, False),
        (m.min_arr, facts.arr, True),
        (m.max_arr, facts.arr, False),
    ):
        if bound is not None:
            checks.append(value is not None and (value >= bound if minimum else value < bound))
    return bool(checks) and all(checks)


def owner_key(facts: AccountFacts) -> str | None:
    if looks_like_email(facts.csm_email):
        assert facts.csm_email is not None
        return facts.csm_email.lower()
    if facts.csm_slack_user:
        return f"slack:{facts.csm_slack_user}"
    if facts.csm_slack_channel:
        return f"slack:{facts.csm_slack_channel}"
    return None


def plan_notices(
    alert: AlertFacts,
    facts: AccountFacts,
    config: RoutingConfig,
    segment: Segment | None,
    stored: Mapping[str, StoredPreferences],
    capabilities: Capabilities,
    now: datetime,
) -> list[Notice]:
    """Owner first, then team subscribers; no address is notified twice for one alert."""
    notices: list[Notice] = []
    fallback = _fallback(config, segment, capabilities)
    owner = owner_key(facts)
    if owner is not None:
        prefs = effective_preferences(config, stored.get(owner), config.person(owner))
        notices.append(
            _decide(
                alert,
                segment,
                prefs,
                Role.OWNER,
                owner,
                _owner_targets(facts, prefs, fallback, capabilities, config),
                now,
            )
        )
    else:
        prefs = effective_preferences(config, None)
        notices.append(
            _decide(
                alert,
                segment,
                prefs,
                Role.FALLBACK,
                "fallback",
                _fallback_targets(prefs, fallback, capabilities),
                now,
            )
        )
    for key, preferences in sorted(stored.items()):
        if key == owner or preferences.scope is not Scope.TEAM:
            continue
        prefs = effective_preferences(config, preferences, config.person(key))
        if prefs.segments and (segment is None or segment.name not in prefs.segments):
            continue
        notices.append(
            _decide(alert, segment, prefs, Role.TEAM, key, _personal_targets(key, prefs, capabilities), now)
        )
    return _without_repeats(notices)


def plan_escalation(
    contacts: Iterable[Person],
    config: RoutingConfig,
    stored: Mapping[str, StoredPreferences],
    capabilities: Capabilities,
    now: datetime,
) -> list[Notice]:
    notices: list[Notice] = []
    for contact in contacts:
        key = contact.email or f"slack:{contact.slack_user or contact.slack_channel}"
        prefs = effective_preferences(config, stored.get(key), contact)
        targets: list[Target] = []
        if contact.slack_channel and capabilities.slack_reaches(contact.slack_channel):
            targets.append(Target(Channel.SLACK, contact.slack_channel, prefs.slack_user))
        elif prefs.slack_user and capabilities.slack_api:
            targets.append(Target(Channel.SLACK, prefs.slack_user))
        elif prefs.slack_user and capabilities.slack_webhook:
            targets.append(Target(Channel.SLACK, SLACK_WEBHOOK_CHANNEL, prefs.slack_user))
        if contact.email:
            targets.append(Target(Channel.EMAIL, contact.email))
        notices.append(
            Notice(
                key,
                Role.ESCALATION,
                tuple(targets),
                not_before=quiet_until(now, prefs.timezone, prefs.quiet_hours),
                timezone=prefs.timezone,
                digest_time=prefs.digest_time,
            )
        )
    return _without_repeats(notices)


@dataclass(frozen=True)
class DigestRoute:
    channel: Channel
    address: str
    fallback: bool  # the recipient cannot be reached any more: their digest goes to the fallback


def route_digest(
    targets: Iterable[Mapping[str, Any]], capabilities: Capabilities, fallback: Fallback
) -> DigestRoute | None:
    """Where a recipient's digest goes: their email if they have one, else their Slack address if
    this deployment still reaches it; else the fallback (email, then Slack); else nowhere (None),
    and the digest waits.

    The targets were fixed when the items were added; Slack may have been reconfigured since
    (a bot token removed, say), so reachability is checked again now."""
    known = {c.value for c in Channel}
    own = [
        (Channel(t["channel"]), str(t.get("address") or "")) for t in targets if t.get("channel") in known
    ]
    for channel, address, is_fallback in (
        *((Channel.EMAIL, a, False) for c, a in own if c is Channel.EMAIL),
        *((Channel.SLACK, a, False) for c, a in own if c is Channel.SLACK),
        (Channel.EMAIL, fallback.email or "", True),
        (Channel.SLACK, fallback.slack_channel or "", True),
    ):
        if channel is Channel.EMAIL:
            reachable = looks_like_email(address)
        else:
            reachable = bool(address) and capabilities.slack_reaches(address)
        if reachable:
            return DigestRoute(channel, address, is_fallback)
    return None


# --- the parts -------------------------------------------------------------------------------


def fallback_for(config: RoutingConfig, segment: Segment | None, capabilities: Capabilities) -> Fallback:
    """The segment's fallback, else the routing file's, else the default webhook and email."""
    return _fallback(config, segment, capabilities)


def _fallback(config: RoutingConfig, segment: Segment | None, capabilities: Capabilities) -> Fallback:
    own = segment.fallback if segment and segment.fallback else Fallback()
    return Fallback(
        slack_channel=own.slack_channel
        or config.fallback.slack_channel
        or (SLACK_WEBHOOK_CHANNEL if capabilities.slack_webhook else None),
        email=own.email or config.fallback.email or capabilities.default_email,
    )


def _owner_targets(
    facts: AccountFacts,
    prefs: Preferences,
    fallback: Fallback,
    capabilities: Capabilities,
    config: RoutingConfig,
) -> list[Target]:
    targets: list[Target] = []
    mention = prefs.slack_user if config.slack.mention_owner else None
    if facts.csm_slack_user and config.slack.mention_owner:
        mention = facts.csm_slack_user
    member = facts.csm_slack_user or prefs.slack_user
    if Channel.SLACK in prefs.channels:
        if facts.csm_slack_channel and capabilities.slack_reaches(facts.csm_slack_channel):
            targets.append(Target(Channel.SLACK, facts.csm_slack_channel, mention))
        elif member and capabilities.slack_api:
            targets.append(Target(Channel.SLACK, member))  # a direct message
        elif fallback.slack_channel and capabilities.slack_reaches(fallback.slack_channel):
            targets.append(Target(Channel.SLACK, fallback.slack_channel, mention))
    if Channel.EMAIL in prefs.channels:
        if looks_like_email(facts.csm_email):
            assert facts.csm_email is not None
            targets.append(Target(Channel.EMAIL, facts.csm_email))
        elif fallback.email:
            targets.append(Target(Channel.EMAIL, fallback.email))
    return targets


def _fallback_targets(prefs: Preferences, fallback: Fallback, capabilities: Capabilities) -> list[Target]:
    targets: list[Target] = []
    if (
        Channel.SLACK in prefs.channels
        and fallback.slack_channel
        and capabilities.slack_reaches(fallback.slack_channel)
    ):
        targets.append(Target(Channel.SLACK, fallback.slack_channel))
    if Channel.EMAIL in prefs.channels and fallback.email:
        targets.append(Target(Channel.EMAIL, fallback.email))
    return targets


def _personal_targets(key: str, prefs: Preferences, capabilities: Capabilities) -> list[Target]:
    targets: list[Target] = []
    if Channel.SLACK in prefs.channels and prefs.slack_user and capabilities.slack_api:
        targets.append(Target(Channel.SLACK, prefs.slack_user))
    if Channel.EMAIL in prefs.channels and looks_like_email(key):
        targets.append(Target(Channel.EMAIL, key))
    return targets


def _decide(
    alert: AlertFacts,
    segment: Segment | None,
    prefs: Preferences,
    role: Role,
    key: str,
    targets: Sequence[Target],
    now: datetime,
) -> Notice:
    base = Notice(key, role, tuple(targets), timezone=prefs.timezone, digest_time=prefs.digest_time)
    floor = max(
        rank(prefs.min_severity), rank(segment.min_severity) if segment and segment.min_severity else 0
    )
    if rank(alert.severity) < floor:
        return Notice(key, role, (), timezone=prefs.timezone, skipped="below_min_severity")
    if not targets:
        return Notice(key, role, (), timezone=prefs.timezone, skipped="no_address")
    digest = (
        alert.force_digest
        or prefs.delivery is Delivery.DIGEST
        or (segment is not None and segment.delivery is Delivery.DIGEST)
        or (
            segment is not None
            and segment.digest_below is not None
            and rank(alert.severity) < rank(segment.digest_below)
        )
    )
    if digest:
        return Notice(
            key, role, base.targets, digest=True, timezone=prefs.timezone, digest_time=prefs.digest_time
        )
    return Notice(
        key,
        role,
        base.targets,
        not_before=quiet_until(now, prefs.timezone, prefs.quiet_hours),
        timezone=prefs.timezone,
        digest_time=prefs.digest_time,
    )


def _without_repeats(notices: list[Notice]) -> list[Notice]:
    seen: set[tuple[Channel, str]] = set()
    out: list[Notice] = []
    for notice in notices:
        if notice.digest or notice.skipped:
            out.append(notice)
            continue
        kept = tuple(t for t in notice.targets if (t.channel, t.address) not in seen)
        seen.update((t.channel, t.address) for t in kept)
        if kept:
            out.append(
                Notice(
                    notice.recipient,
                    notice.role,
                    kept,
                    False,
                    notice.not_before,
                    notice.timezone,
                    notice.digest_time,
                )
            )
    return out
