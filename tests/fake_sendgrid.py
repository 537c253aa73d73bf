"""The one SendGrid stand-in of the tests: an HTTP server on 127.0.0.1 speaking v3 mail send.

It records every request and answers a scripted sequence of ``Step``s, then 202 with an
``X-Message-Id`` (``sg-<n>``). A stalled step answers nothing (the client times out) and accepts
nothing. ``accepted`` counts the kamflow_keys of the requests it answered 202, ``keys()`` those
of every request. The ``sendgrid_server`` fixture (tests/conftest.py) gives a fresh one; the
dispatch benchmark (benchmarks/dispatch_bench.py) drains its outbox into one that keeps counts
only (``keep=False``).
"""

from __future__ import annotations

import collections
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeSendGrid", "Step", "kamflow_keys"]


@dataclass
class Step:
    """One scripted answer: status, headers, body; or a stall of ``stall`` seconds (cut short
    when the server closes) after which the request is dropped unanswered."""

    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stall: float = 0.0


def kamflow_keys(payload: dict[str, Any]) -> list[str]:
    """The outbox keys a mail-send request carries: one a personalization (a batch), else the
    request's own custom_args (one email)."""
    keys = [p["custom_args"]["kamflow_key"] for p in payload.get("personalizations", ())
            if "kamflow_key" in p.get("custom_args", {})]
    own = payload.get("custom_args", {}).get("kamflow_key")
    return keys or ([own] if own else [])


class FakeSendGrid:
    """Serves from construction until ``close()`` (or the end of a ``with`` block).

    ``requests``: each request as ``{"path", "headers", "json"}``, in arrival order (with
    ``keep=False`` none: a benchmark's hundred thousand emails would stay in memory);
    ``received``: how many requests came."""

    def __init__(self, script: list[Step] | None = None, keep: bool = True) -> None:
        self.script: list[Step] = list(script or ())
        self.requests: list[dict[str, Any]] = []
        self.received = 0
        self.accepted: collections.Counter[str] = collections.Counter()
        self.release = threading.Event()
        lock = threading.Lock()  # the server answers each connection in a thread of its own
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload = json.loads(raw)
                with lock:
                    owner.received += 1
                    if keep:
                        owner.requests.append(
                            {"path": self.path, "headers": dict(self.headers), "json": payload})
                    step = owner.script.pop(0) if owner.script else Step(
                        202, {"X-Message-Id": f"sg-{owner.received}"})
                if step.stall:
                    owner.release.wait(step.stall)
                    return  # the client timed out: nothing accepted, no answer
                if step.status == 202:
                    with lock:
                        owner.accepted.update(kamflow_keys(payload))
                try:
                    self.send_response(step.status)
                    for name, value in step.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(step.body)))
                    self.end_headers()
                    self.wfile.write(step.body)
                except OSError:
                    pass  # the client gave up and closed the connection

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def keys(self) -> collections.Counter[str]:
        """How often each kamflow_key was sent, over every request."""
        return collections.Counter(k for r in self.requests for k in kamflow_keys(r["json"]))

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeSendGrid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
