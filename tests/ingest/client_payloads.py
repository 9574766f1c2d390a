"""What the real Segment-protocol clients send, captured from the clients themselves.

The three pinned clients (segment-analytics-python, analytics-python 1.x, rudder-sdk-python),
unmodified, make every kind of call against a local HTTP server that records each body (gzip
decoded): the payloads the mutation fuzzer starts from are theirs, not written by hand.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WRITE_KEY = "capture-write-key"


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        self.server.bodies.append(json.loads(raw))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"success": true}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _recording_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.bodies  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _every_call(client: Any) -> None:
    at = datetime.now(UTC)
    client.identify("user-1", {"email": "jane@example.com", "name": "Jane", "plan": "pro",
                               "account_id": "acct-1"}, timestamp=at)
    client.group("user-1", "acct-1", {"name": "Acme", "mrr": 4200, "csm_email": "csm@example.com",
                                      "renewal_date": "2027-02-01"}, timestamp=at)
    client.track("user-1", "Report Exported", {"format": "csv", "rows": 1200, "nested": {"a": [1, 2]}},
                 context={"groupId": "acct-1", "ip": "10.0.0.1"}, timestamp=at)
    client.page("user-1", "Docs", "Getting started", {"url": "https://example.com/docs"}, timestamp=at)
    client.screen("user-1", "App", "Home", {"build": 42}, timestamp=at)
    client.alias("anon-7", "user-1", timestamp=at)
    client.track(anonymous_id="anon-8", event="Signed Up", properties={"referrer": None})


@cache
def captured_batches() -> tuple[str, ...]:
    """Each client's `/v1/batch` bodies, as JSON text (immutable, so the cache can be shared)."""
    from analytics.client import Client as Analytics1x
    from rudderstack.analytics.client import Client as RudderClient
    from segment.analytics.client import Client as SegmentClient

    with _recording_server() as (host, bodies):
        for make in (lambda: SegmentClient(write_key=WRITE_KEY, host=host, sync_mode=True),
                     lambda: RudderClient(write_key=WRITE_KEY, host=host, sync_mode=True, gzip=True),
                     lambda: Analytics1x(write_key=WRITE_KEY, host=host)):
            client = make()
            _every_call(client)
            client.flush()  # sync clients have sent already; the 1.x one's thread sends now
        return tuple(json.dumps(body) for body in bodies)


def captured_messages() -> list[dict[str, Any]]:
    """Every message the clients sent, one per call, as it travelled inside its batch."""
    return [message for text in captured_batches() for message in json.loads(text)["batch"]]
