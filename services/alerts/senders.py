"""The two ways out: a Slack incoming webhook and an SMTP server. Each attempt ends in an
`Outcome`, never an exception, and within `timeout` seconds overall (the dispatcher's lease
depends on that bound)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from services.alerts.delivery_policy import (
    Outcome,
    Verdict,
    classify_slack,
    classify_smtp_error,
    network_error,
    parse_retry_after,
)
from shared.events import utcnow
from shared.settings import Settings


class SlackSender:
    def __init__(self, webhook_url: str | None, client: httpx.AsyncClient, timeout: float) -> None:
        self._url = webhook_url
        self._client = client
        self._timeout = timeout

    async def send(self, body: dict[str, Any]) -> Outcome:
        if not self._url:
            return Outcome(Verdict.FAILED, "not_configured", None, "no Slack webhook URL is configured")
        try:
            response = await asyncio.wait_for(self._client.post(self._url, json=body), self._timeout)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return network_error(exc)
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
        return classify_slack(response.status_code, response.text, retry_after)


class EmailSender:
    def __init__(self, settings: Settings, timeout: float) -> None:
        self._settings = settings
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> Outcome:
        s = self._settings
        try:
            _, reply = await asyncio.wait_for(
                aiosmtplib.send(
                    message,
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username,
                    password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                    use_tls=s.smtp_use_tls,
                    start_tls=False if s.smtp_use_tls else s.smtp_starttls,
                    timeout=self._timeout,
                ),
                self._timeout,
            )
        except aiosmtplib.SMTPException as exc:
            return classify_smtp_error(exc)
        except (OSError, TimeoutError) as exc:
            return network_error(exc)
        return Outcome(Verdict.SENT, "ok", 250, reply[:1000])
