"""WSGI entry point for gunicorn: ``gunicorn 'gateway.bank_api.wsgi:app'``.

Configuration comes from the environment (see ``GatewayConfig.from_env``), typically
``BANK_API_PROFILE`` and ``BANK_API_MSP``.
"""

from __future__ import annotations

from gateway.bank_api.app import create_app
from gateway.bank_api.config import GatewayConfig
from gateway.bank_api.logs import configure_logging

_config = GatewayConfig.from_env()
configure_logging(_config.log_level)
app = create_app(_config)
