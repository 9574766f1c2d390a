"""A contact (someone who can be surveyed) from a user's `identify` traits. Pure.

Email comes from `email`; the name from `name`, else `first_name` + `last_name`; the role
from `role`, else `title` (what Segment's spec and most CRMs call it). Traits are merged
per trait on event time (shared/account_facts.merge_traits) before this reads them, so a
late, older identify never overwrites a newer email.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.surveys.attribution import normalize_email


@dataclass(frozen=True)
class Contact:
    user_id: str
    email: str | None
    name: str | None
    role: str | None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


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
    )
