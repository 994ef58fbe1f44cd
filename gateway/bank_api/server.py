"""The production HTTP server of a gateway: waitress, one process, a bounded pool of threads.

Why waitress and one process (docs/decisions/0015-gateway-http-server.md): it reads each
request completely (headers and body) in its event loop before a thread sees it, so slow or
idle clients hold a socket, never a worker thread; and one process keeps the follower, the
sweeper and the webhook sender, which ``create_app`` starts, running exactly once per bank.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

from flask import Flask
from waitress.server import create_server

from gateway.bank_api.app import MAX_BODY_BYTES
from gateway.bank_api.config import GatewayConfig

log = logging.getLogger(__name__)


def http_server(app: Flask, config: GatewayConfig, *, port: int | None = None) -> Any:
    """A waitress server for ``app``, bound but not yet serving (``run()`` serves)."""
    return create_server(
        app,
        host=config.host,
        port=config.port if port is None else port,
        threads=config.http_threads,
        connection_limit=config.http_connection_limit,
        # An idle connection (no request in progress) is closed after this many seconds.
        channel_timeout=int(config.http_idle_timeout_seconds),
        # Bodies a little over Flask's limit still reach Flask, which answers 413 as a problem
        # document; far larger ones are cut off by waitress before they are buffered.
        max_request_body_size=MAX_BODY_BYTES * 4,
        max_request_header_size=64 * 1024,
        # poll() instead of select(): select cannot watch descriptors above 1024.
        asyncore_use_poll=True,
        ident="bank-api",
        expose_tracebacks=False,
        # The gateway is reached directly; X-Forwarded-* from a client are not to be believed.
        clear_untrusted_proxy_headers=True,
    )


def serve(app: Flask, config: GatewayConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = http_server(app, config)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info(
        "serving on http://%s:%s with %d threads (waitress)", config.host, server.effective_port, config.http_threads
    )
    try:
        server.run()
    finally:
        server.close()
