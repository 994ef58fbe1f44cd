"""A webhook receiver on loopback for the gateway's delivery tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Answers every POST with ``status`` (and ``Location``, if given), or 500 while ``fail_next`` > 0.

    ``hits`` lists the path of every request that arrived; ``requests`` the headers and body of
    those it accepted. While ``stall`` holds an unset event, every answer waits for it.
    """

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.hits: list[str] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.stall: threading.Event | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.hits.append(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.stall is not None:
                    receiver.stall.wait(30)
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                else:
                    receiver.requests.append((dict(self.headers), body))
                    self.send_response(status)
                    if location:
                        self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
