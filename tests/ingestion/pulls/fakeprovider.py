"""A fake provider admin API on 127.0.0.1: scripted replies, and every request recorded with its arrival time.

A handler gets each request (`Seen`) and returns a `Reply`; a reply can also cut the connection in the
middle of the body ("reset") or answer only after a delay (to trip the client's timeout).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    at: float  # time.time() when the request arrived
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # send half the body, then reset the connection
    delay: float = 0.0  # seconds to wait before answering


def page(path: Path) -> bytes:
    return path.read_bytes()


class FakeProvider:
    def __init__(self, handler: Callable[[Seen], Reply]) -> None:
        self.handler = handler
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
                arrived = time.time()
                parts = urlsplit(self.path)
                seen = Seen(
                    arrived,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                )
                with fake._lock:
                    fake.requests.append(seen)
                reply = fake.handler(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if reply.reset:
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.close_connection = True
                        self.connection.close()
                        return
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads `requests`

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def times(self, path_suffix: str = "") -> list[float]:
        return [seen.at for seen in self.requests if seen.path.endswith(path_suffix)]


def paged(pages: list[bytes]) -> Callable[[Seen], Reply]:
    """Serve pages in order, following the `next_page` tokens written in them."""
    by_token: dict[str | None, bytes] = {None: pages[0]}
    for current, following in zip(pages, pages[1:], strict=False):
        by_token[json.loads(current)["next_page"]] = following

    def handler(seen: Seen) -> Reply:
        body = by_token.get(seen.param("page"))
        if body is None:
            return Reply(400, {"error": {"message": f"unknown page {seen.param('page')!r}"}})
        return Reply(200, body)

    return handler
