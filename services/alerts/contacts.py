"""Who to tell about an account: the contact part of its facts (shared/account_facts.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.account_facts import AccountFacts


@dataclass(frozen=True)
class Contact:
    account_id: str
    account_name: str | None = None
    csm_email: str | None = None
    csm_slack_channel: str | None = None


def contact_from_traits(account_id: str, traits: Mapping[str, Any]) -> Contact:
    facts = AccountFacts.from_traits(traits)
    return Contact(account_id=account_id, account_name=facts.name, csm_email=facts.csm_email,
                   csm_slack_channel=facts.csm_slack_channel)
