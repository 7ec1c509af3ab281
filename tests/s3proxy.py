"""A small fault-injecting HTTP proxy in front of the moto S3 server.

Tests point ``AWS_ENDPOINT_URL`` at the proxy and set :class:`Rule` s: a request matching a rule
gets a ``503 SlowDown`` S3 error, a ``403 AccessDenied`` error, a TCP reset (RST, no response at
all), or a delay before it is forwarded; every other request is forwarded unchanged. A rule
fires ``times`` times (``None``: for ever), so a test can make a fault transient or persistent.
Every request is logged with what was done to it, for the test's assertions.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import unquote, urlsplit

Action = Literal["slowdown", "reset", "delay", "denied"]

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>FAULT</RequestId><HostId>fault-proxy</HostId></Error>"
)
DENIED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message>"
    b"<RequestId>FAULT</RequestId><HostId>fault-proxy</HostId></Error>"
)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
}


@dataclass
class Rule:
    """Answer matching requests with ``action``.

    ``method`` (e.g. ``"GET"``) and ``path_contains`` (a substring of the URL path and query,
    decoded: ``year=2024``, not ``year%3D2024``) select requests; ``times`` is how many requests
    the rule fires for (None: every one).
    """

    action: Action
    method: str | None = None
    path_contains: str = ""
    times: int | None = None
    delay_s: float = 0.0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        return (self.method is None or self.method == method) and self.path_contains in path


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    action: str  # "forward" or the rule's action


@dataclass
class FaultProxy:
    """The proxy's state: where it forwards, its rules and its request log."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def choose(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    self.log.append(Seen(method, path, rule.action))
                    return rule
            self.log.append(Seen(method, path, "forward"))
            return None

    def set_rules(self, *rules: Rule) -> None:
        with self.lock:
            self.rules = list(rules)
            self.log = []

    def requests(self, action: str | None = None, path_contains: str = "") -> list[Seen]:
        with self.lock:
            return [
                s
                for s in self.log
                if (action is None or s.action == action) and path_contains in s.path
            ]


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test asserts on proxy.log

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def _error(self, status: int, reason: str, body: bytes) -> None:
            self.send_response(status, reason)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self, body: bytes) -> None:
            conn = http.client.HTTPConnection(str(target.hostname), target.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            finally:
                conn.close()
            self.send_response(response.status, response.reason)
            head = self.command == "HEAD"  # its Content-Length is the object's, kept as is
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and (head or key.lower() != "content-length"):
                    self.send_header(key, value)
            if not head:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _serve(self) -> None:
            body = self._body()
            rule = proxy.choose(self.command, unquote(self.path))
            if rule is None or rule.action == "delay":
                if rule is not None:
                    # A slow response: the proxy holds the request, as a throttled or
                    # overloaded endpoint does, then answers normally.
                    time.sleep(rule.delay_s)
                self._forward(body)
            elif rule.action == "slowdown":
                self._error(503, "Slow Down", SLOWDOWN_BODY)
            elif rule.action == "denied":
                self._error(403, "Forbidden", DENIED_BODY)
            else:
                self._reset()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Run a :class:`FaultProxy` forwarding to ``upstream`` on 127.0.0.1 and a free port."""
    proxy = FaultProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="s3-fault-proxy", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    proxy.url = f"http://{host!s}:{port}"
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
