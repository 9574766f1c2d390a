"""The routing configuration (YAML): who hears about which alert, when, and what to suggest.

Loaded once at start from `CHURNWATCH_ALERTS_ROUTING_FILE` and validated whole; a mistake
stops the service with every error named by its place in the file
(`segments[1].escalation.after_hours: ...`). Without a file, the defaults below apply:
owner CSM on Slack and email, immediately, no quiet hours, no escalation.
See docs/alerts.md ("Routing file") for a commented example.
"""

from __future__ import annotations

import os
import re
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.events import Severity
from shared.http import field_errors

SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def rank(severity: Severity) -> int:
    return SEVERITY_RANK[severity]


def looks_like_email(value: str | None) -> bool:
    return value is not None and len(value) <= 254 and _EMAIL.match(value) is not None


def valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc
    return name


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


class Delivery(StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"


class Scope(StrEnum):
    OWNED = "owned"  # alerts about accounts the recipient owns (csm_email)
    TEAM = "team"  # every alert (optionally only some segments)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(_Strict):
    """Local times between which nothing is sent immediately; may span midnight (20:00-08:00)."""

    start: time
    end: time


class Person(_Strict):
    """Someone alerts can reach: a recipient, an escalation contact or a team channel."""

    name: str | None = None
    email: str | None = None
    slack_user: str | None = Field(default=None, description="Slack member id (U0123ABC)")
    slack_channel: str | None = None
    timezone: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not looks_like_email(value):
            raise ValueError("not an email address")
        return value.lower() if value else value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return valid_timezone(value) if value else value

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        if not (self.email or self.slack_user or self.slack_channel):
            raise ValueError("needs at least one of email, slack_user, slack_channel")
        return self


class Escalation(_Strict):
    after_hours: float = Field(gt=0, description="unacknowledged this long after the owner was told")
    min_severity: Severity = Severity.HIGH
    contacts: list[Person] = Field(min_length=1)


class SegmentMatch(_Strict):
    """An account is in the segment when every given condition holds."""

    segments: list[str] = Field(default_factory=list, description="scoring's segment names")
    plans: list[str] = Field(default_factory=list, description="`plan` trait values (case-insensitive)")
    min_mrr: float | None = None
    max_mrr: float | None = None
    min_arr: float | None = None
    max_arr: float | None = None


class Fallback(_Strict):
    """Where an alert goes on a channel the account's owner cannot be reached on."""

    slack_channel: str | None = None
    email: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not looks_like_email(value):
            raise ValueError("not an email address")
        return value


class Segment(_Strict):
    name: str = Field(min_length=1)
    match: SegmentMatch | None = None
    delivery: Delivery | None = None
    min_severity: Severity | None = None
    digest_below: Severity | None = Field(default=None, description="severities below go to the digest")
    fallback: Fallback | None = None
    escalation: Escalation | None = None


class Defaults(_Strict):
    channels: list[Channel] = Field(default_factory=lambda: [Channel.SLACK, Channel.EMAIL], min_length=1)
    min_severity: Severity = Severity.LOW
    delivery: Delivery = Delivery.IMMEDIATE
    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    digest_time: time = time(9, 0)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return valid_timezone(value)


class Lifecycle(_Strict):
    cooldown_hours: float = Field(
        default=24.0,
        ge=0,
        description="a re-raised alert within this long of its last "
        "notification goes to the digest, not a new ping",
    )
    clear_after_minutes: float = Field(
        default=60.0, ge=0, description="hysteresis: cleared must stay cleared this long"
    )
    max_signal_age_hours: float | None = Field(
        default=168.0, gt=0, description="older signals (a backfill) are kept, not sent"
    )
    group_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="the first message of an alert waits this long, so reasons raised "
        "together arrive as one message",
    )


class SlackOptions(_Strict):
    webhooks: dict[str, str] = Field(
        default_factory=dict, description="channel -> incoming webhook URL; ${ENV} expanded"
    )
    mention_owner: bool = True


class Links(_Strict):
    account: str | None = Field(default=None, description="account page, with {account_id}")


class RoutingConfig(_Strict):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    fallback: Fallback = Field(default_factory=Fallback)
    segments: list[Segment] = Field(default_factory=list)
    escalation: Escalation | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    playbook: dict[str, str] = Field(default_factory=dict)
    recipients: list[Person] = Field(default_factory=list)
    slack: SlackOptions = Field(default_factory=SlackOptions)
    links: Links = Field(default_factory=Links)

    @model_validator(mode="after")
    def _unique_segments(self) -> RoutingConfig:
        names = [s.name for s in self.segments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"segment names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def person(self, key: str) -> Person | None:
        """The directory entry of a recipient key (an email, lowercased)."""
        return next((p for p in self.recipients if p.email == key), None)

    def segment(self, name: str | None) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None) if name else None


class ConfigError(ValueError):
    """The routing file cannot be used; the message names the file and each wrong place in it."""


def load_routing(path: str | Path | None) -> RoutingConfig:
    if path is None or str(path) == "":
        return RoutingConfig()
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the routing file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    return parse_routing(raw, str(file))


def parse_routing(raw: Any, source: str = "<routing>") -> RoutingConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    problems: list[str] = []
    raw = _expand_env(raw, "", problems)
    try:
        config = RoutingConfig.model_validate(raw)
    except ValidationError as exc:
        problems += [f"{e['field']}: {e['message']}" for e in field_errors(exc)]
        config = None
    if problems or config is None:
        raise ConfigError(f"{source}: invalid routing configuration:\n  " + "\n  ".join(problems))
    return config


def _expand_env(value: Any, where: str, problems: list[str]) -> Any:
    """`${NAME}` in strings becomes the environment variable (so webhook URLs stay out of the file)."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REFERENCE.sub(substitute, value)
    return value


def secret_value(value: SecretStr | None) -> str | None:
    """A secret setting's value; an empty one (`VAR=` in docker-compose) counts as unset."""
    text = value.get_secret_value().strip() if value is not None else ""
    return text or None
