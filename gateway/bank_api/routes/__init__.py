"""HTTP routes, one blueprint per resource."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from gateway.bank_api.routes import accounts, docs, ops, payments, treasury, webhooks

    for module in (ops, docs, accounts, payments, treasury, webhooks):
        app.register_blueprint(module.bp)
