"""A contact (someone who can be surveyed) from a user's `identify` traits. Pure.

Email comes from `email`; the name from `name`, else `first_name` + `last_name`; the role
from `role`, else `title` (what Segment's spec and most CRMs call it). The Zendesk user id
from `zendesk_user_id` (a string or a number, as Zendesk's own ids are): the explicit mapping
that lets a Zendesk ticket, which names its requester only by that id, find the contact.
Traits are merged
per trait on event time (shared/account_facts.merge_traits) before this reads them, so a
late, older identify never overwrites a newer email.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.surveys.responses.attribution import normalize_email

ZENDESK_USER_ID_TRAIT = "zendesk_user_id"


@dataclass(frozen=True)
class Contact:
    user_id: str
    email: str | None
    name: str | None
    role: str | None
    zendesk_user_id: str | None = None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def contact_from_traits(user_id: str, traits: Mapping[str, Any]) -> Contact:
    name = _text(traits.get("name"))
    if name is None:
        parts = [_text(traits.get("first_name")) or _text(traits.get("firstName")),
                 _text(traits.get("last_name")) or _text(traits.get("lastName"))]
        name = " ".join(p for p in parts if p) or None
    return Contact(
        user_id=user_id,
        email=normalize_email(traits.get("email")),
        name=name,
        role=_text(traits.get("role")) or _text(traits.get("title")),
        zendesk_user_id=_id(traits.get(ZENDESK_USER_ID_TRAIT)),
    )
