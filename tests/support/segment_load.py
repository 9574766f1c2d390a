"""A product backend under load: the official Segment client (`segment-analytics-python`, its
own batching and retries with back-off) sending group, identify and tracks per user from a
thread of its own, so a test can break the system while it sends."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SegmentLoad:
    host: str
    prefix: str
    users: int = 60
    tracks_per_user: int = 10
    write_key: str = "test-write-key"
    # Spreads the sending over time, as a live backend's traffic is: the shape of the load,
    # not a wait for anything.
    pause_seconds: float = 0.0
    sent: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)
    # Set by the test once it is done breaking things: past `users`, new users keep coming
    # until then, so the stream flows through every fault on a machine of any speed.
    enough: threading.Event = field(default_factory=threading.Event)

    def account_of(self, user: int) -> str:
        return f"{self.prefix}-acct-{user % 10}"

    def send(self) -> None:
        from segment.analytics.client import Client

        client = Client(write_key=self.write_key, host=self.host, upload_size=100,
                        on_error=lambda error, items: self.errors.append((repr(error), len(items))))
        for u in itertools.count():
            if u >= self.users and self.enough.is_set():
                break
            user, account = f"{self.prefix}-user-{u}", self.account_of(u)
            self._add(client.group(user, account, {"name": f"Account {account}", "plan": "pro"}))
            self._add(client.identify(user, {"email": f"{user}@example.com", "role": "admin"}))
            for n in range(self.tracks_per_user):
                self._add(client.track(user, "Report Built", {"rows": n}))
                if self.pause_seconds:
                    time.sleep(self.pause_seconds)
        client.flush()  # every queued message sent, retried until the client gives up
        client.join()

    def _add(self, outcome: tuple[bool, dict[str, Any]]) -> None:
        queued, message = outcome
        assert queued, "the client's queue is full"
        self.sent.append(message)

    @property
    def message_ids(self) -> set[str]:
        return {m["messageId"] for m in list(self.sent)}  # a copy: the sender may still append

    def ids_of(self, *types: str) -> set[str]:
        return {m["messageId"] for m in list(self.sent) if m["type"] in types}

    @property
    def accounts(self) -> set[str]:
        return {m["groupId"] for m in list(self.sent) if m["type"] == "group"}


@contextmanager
def sending(load: SegmentLoad) -> Iterator[threading.Thread]:
    """`load` sent from a thread while the block runs; on leaving, says enough and waits for the
    client to have sent (or given up on) everything."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            load.send()
        except BaseException as exc:  # surfaced in the test's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"segment-load-{load.prefix}", daemon=True)
    thread.start()
    try:
        yield thread
    except BaseException:
        # The test failed: it need not wait for a client still retrying against what it broke
        # (the thread is a daemon; the services and brokers are stopped by their fixtures).
        load.enough.set()
        thread.join(timeout=30)
        raise
    load.enough.set()
    thread.join()
    if failure:
        raise failure[0]
