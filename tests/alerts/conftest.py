"""Fixtures for the alerts tests: recording Slack/SMTP receivers, always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.alerts.receivers import SlackReceiver, SmtpReceiver


@pytest.fixture
async def slack() -> AsyncIterator[SlackReceiver]:
    async with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpReceiver]:
    async with SmtpReceiver() as receiver:
        yield receiver
