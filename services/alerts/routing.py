"""Where an alert goes: the channels and recipients resolved when the alert is created.

Targets are fixed at creation (stored as delivery rows), so a later change of CSM does not
re-route or repeat an alert already on its way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from services.alerts.contacts import Contact

# The Slack webhook URL is a credential: it is never stored as a recipient (and so never
# shown by the alerts API). A delivery names the channel instead, or this placeholder for
# the webhook's own channel.
SLACK_WEBHOOK_CHANNEL = "webhook-default-channel"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


@dataclass(frozen=True)
class Target:
    channel: Channel
    recipient: str


@dataclass(frozen=True)
class RoutingConfig:
    slack_configured: bool
    default_email: str | None


def looks_like_email(value: str | None) -> bool:
    return value is not None and len(value) <= 254 and _EMAIL.match(value) is not None


def resolve_targets(contact: Contact | None, config: RoutingConfig) -> list[Target]:
    """Slack (the CSM's channel if known) and email (the CSM, else the default address)."""
    targets: list[Target] = []
    if config.slack_configured:
        channel = contact.csm_slack_channel if contact else None
        targets.append(Target(Channel.SLACK, channel or SLACK_WEBHOOK_CHANNEL))
    csm_email = contact.csm_email if contact else None
    if looks_like_email(csm_email):
        assert csm_email is not None
        targets.append(Target(Channel.EMAIL, csm_email))
    elif looks_like_email(config.default_email):
        assert config.default_email is not None
        targets.append(Target(Channel.EMAIL, config.default_email))
    return targets
