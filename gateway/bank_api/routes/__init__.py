"""HTTP routes, one blueprint per resource; the gateway's role decides which are mounted."""

from __future__ import annotations

from types import ModuleType

from flask import Flask

from gateway.bank_api.config import REGULATOR


def register_blueprints(app: Flask, role: str) -> None:
    from gateway.bank_api.routes import docs, ops

    modules: tuple[ModuleType, ...]
    if role == REGULATOR:
        from gateway.bank_api.routes import alert_webhooks, alerts, corridors, disclosure_requests, oversight

        modules = (ops, docs, oversight, corridors, alerts, alert_webhooks, disclosure_requests)
    else:
        from gateway.bank_api.routes import accounts, disclosures, escrows, groups, payments, pvp, treasury, webhooks

        modules = (ops, docs, accounts, payments, escrows, pvp, treasury, groups, webhooks, disclosures)
    for module in modules:
        app.register_blueprint(module.bp)
