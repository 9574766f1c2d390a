"""Settings read from the environment as docker-compose passes them."""

from __future__ import annotations

import pytest

from shared.settings import Settings


def test_an_empty_optional_setting_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # Compose's `${VAR:-}` passes an empty string for a variable nobody set.
    monkeypatch.setenv("CHURNWATCH_ADMIN_TOKEN", "")
    monkeypatch.setenv("CHURNWATCH_SLACK_WEBHOOK_URL", "")
    monkeypatch.setenv("CHURNWATCH_SMTP_HOST", "mail.internal")
    settings = Settings()
    assert settings.admin_token is None
    assert settings.slack_webhook_url is None
    assert settings.smtp_host == "mail.internal"


def test_an_empty_setting_with_a_default_is_still_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_TOPIC_PARTITIONS", "")
    with pytest.raises(ValueError, match="topic_partitions"):
        Settings()
