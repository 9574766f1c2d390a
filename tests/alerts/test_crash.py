"""Kill the alerts service (SIGKILL, by pid) in the middle of sends, restart it, and show that
nothing is lost and no Slack message is posted twice.

The dangerous window is after the receiver took a message and before the service recorded
that: the message exists, the ledger says "started, no result". On the Slack Web API the next
attempt finds the message by its delivery key in the channel history and records it as sent
without posting again. SMTP cannot be asked: the email is sent again under the same
Message-ID (at least once; mail stores fold the copy).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from deploy.local.processes import free_port
from shared.events import utcnow
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.alerts.receivers import SlackReceiver, SmtpReceiver, wait_until
from tests.alerts.support import API_TOKEN, AUTH, group_event, signal
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess

ACCOUNTS = [f"acct-{i}" for i in range(7)]
# acct-6's first alert comes in the second window (another alert of acct-1 would only join the
# one it has open, without a message).
FIRST_WINDOW = ACCOUNTS[:6]


async def all_delivered(
    process: ServiceProcess, accounts: list[str], total: int, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every delivery of every account's alerts sent (read through the restarted service's API)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=process.base_url, headers=AUTH) as client:
        while True:
            alerts = []
            for account in accounts:
                alerts += (await client.get(f"/v1/accounts/{account}/alerts")).json()["alerts"]
            deliveries = [d for a in alerts for d in a["deliveries"]]
            if len(alerts) == total and deliveries and all(d["status"] == "sent" for d in deliveries):
                return alerts
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not all delivered: {[(d['recipient'], d['status']) for d in deliveries]}"
                )
            await asyncio.sleep(0.2)


def delivery_of(alerts: list[dict[str, Any]], account: str, channel: str, signal_type: str) -> dict[str, Any]:
    alert = next(a for a in alerts if a["account_id"] == account and a["signal_type"] == signal_type)
    return next(d for d in alert["deliveries"] if d["channel"] == channel)


async def test_sigkill_mid_send_loses_nothing_and_posts_nothing_twice(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, tmp_path: Path
) -> None:
    settings: Settings = infra.fresh_settings(
        slack_bot_token=slack.token,
        slack_api_base_url=slack.api_url,
        smtp_port=smtp.port,
        alerts_api_token=API_TOKEN,
        delivery_timeout_seconds=5.0,
        delivery_lease_seconds=12.0,
        slack_min_interval_seconds=0,
        delivery_poll_seconds=0.1,
        alerts_tick_seconds=3600,
    )
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    await publisher.start()
    port = free_port()
    try:
        await publisher.publish(
            [
                group_event(
                    a, {"name": a.title(), "csm_email": f"csm@{a}.test", "csm_slack_channel": f"#cs-{a}"}
                )
                for a in ACCOUNTS
            ]
        )
        first = ServiceProcess("alerts", settings, port, tmp_path)
        await asyncio.to_thread(first.start)
        try:
            # Window 1: Slack has the message and the mail server has the email; neither answered yet.
            slack.hold("after")
            smtp.hold()
            turned_red = signal("acct-0", "entered_red", "r1", summary="turned red", at=utcnow())
            await publisher.publish([turned_red])
            await wait_until(lambda: slack.holding.is_set() and smtp.holding, what="both sends in flight")
            # More alerts in the pipeline while it dies.
            await publisher.publish(
                [signal(a, "entered_red", "r1", summary="turned red", at=utcnow()) for a in FIRST_WINDOW[1:]]
            )
        finally:
            await asyncio.to_thread(first.kill)
        assert first.process is not None and first.process.returncode == -9
        slack.release()
        smtp.release()

        second = ServiceProcess("alerts", settings, port, tmp_path)
        await asyncio.to_thread(second.start)
        try:
            alerts = await all_delivered(second, FIRST_WINDOW, len(FIRST_WINDOW))
            # Window 2: the request reached Slack's door but Slack never took the message.
            slack.hold("before")
            usage_fell = signal("acct-6", "usage_decline", "w1", summary="usage fell", at=utcnow())
            await publisher.publish([usage_fell])
            await wait_until(lambda: slack.holding.is_set(), what="a send in flight")
        finally:
            await asyncio.to_thread(second.kill)
        slack.release()

        third = ServiceProcess("alerts", settings, port, tmp_path)
        await asyncio.to_thread(third.start)
        try:
            await wait_until(lambda: len(slack.messages) >= len(ACCOUNTS), 60, "the second window's message")
            alerts = await all_delivered(third, ACCOUNTS, len(ACCOUNTS))
        finally:
            await asyncio.to_thread(third.stop)
    finally:
        await publisher.stop()

    # Nothing lost: every alert reached its channel and its owner's inbox.
    slack_keys = Counter(m.delivery_key for m in slack.messages)
    expected = {d["recipient"] for a in alerts for d in a["deliveries"] if d["channel"] == "slack"}
    assert {slack.channel_id(r) for r in expected} == {m.channel for m in slack.messages}
    # Nothing posted twice on Slack, in either window.
    assert len(slack.messages) == len(ACCOUNTS)
    assert all(count == 1 for count in slack_keys.values()), slack_keys
    # Window 1, Slack: settled from the channel history, not posted again.
    held = delivery_of(alerts, "acct-0", "slack", "entered_red")
    assert held["attempts"] == 2 and "not posted again" in held["last_response"]
    assert held["external_id"] == next(m.ts for m in slack.in_channel("#cs-acct-0"))
    # Window 2: Slack never had it, so the next attempt posted it, without a "repeat" note.
    retried = delivery_of(alerts, "acct-6", "slack", "usage_decline")
    assert (
        retried["attempts"] == 2
        and retried["last_response"]
        == '{"ok":true,"channel":"' + slack.channel_id("#cs-acct-6") + f'","ts":"{retried["external_id"]}"}}'
    )
    assert not any("may already have seen" in m.text for m in slack.messages)
    # Email: an attempt cut off after the server took the message is sent again under the same
    # Message-ID (the one duplicate this design allows, which mail stores fold); every other
    # email arrived exactly once, and none was lost.
    ids = Counter(str(m.message["Message-ID"]) for m in smtp.received)
    mails = [d for a in alerts for d in a["deliveries"] if d["channel"] == "email"]
    assert len(mails) == len(ACCOUNTS) and set(ids) == {d["external_id"] for d in mails}
    for mail in mails:
        assert ids[mail["external_id"]] <= mail["attempts"] <= 2, (mail, ids)
    held_mail = delivery_of(alerts, "acct-0", "email", "entered_red")
    assert ids[held_mail["external_id"]] == 2 and held_mail["attempts"] == 2
