"""The Flask application factory and the services a request reaches through ``services()``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from fabric_client import SubmissionLimit
from flask import Flask, Response, current_app, g, request

from gateway.bank_api.auth import KeyStore, presented_key
from gateway.bank_api.config import REGULATOR, ConfigError, GatewayConfig
from gateway.bank_api.egress import EgressPolicy, validate_allow_list
from gateway.bank_api.fx import RateTable
from gateway.bank_api.idempotency import IdempotencyStore
from gateway.bank_api.ledger import JSON, Ledger, LedgerError
from gateway.bank_api.metrics import GatewayMetrics
from gateway.bank_api.money import DEFAULT_EXPONENTS, Currencies
from gateway.bank_api.problems import REQUEST_ID_HEADER, current_request_id, register_problem_handlers
from gateway.bank_api.ratelimit import RateLimiter, TokenBuckets
from gateway.bank_api.storage.db import Database
from gateway.bank_api.validation import check_query_string

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
REFERENCE_DATA_TTL_SECONDS = 60.0


class MeteredLedger:
    """Wraps a ledger so that every call is timed into the Fabric latency histogram."""

    def __init__(self, ledger: Ledger, metrics: GatewayMetrics) -> None:
        self._ledger = ledger
        self._metrics = metrics

    @property
    def msp_id(self) -> str:
        return self._ledger.msp_id

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._ledger, name)
        if not callable(attribute) or name in ("events", "close"):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._metrics.ledger_operation(name):
                return attribute(*args, **kwargs)

        return timed


@dataclass
class Services:
    """Everything a request handler or background worker needs, built once per app."""

    config: GatewayConfig
    db: Database
    keys: KeyStore
    idempotency: IdempotencyStore
    ledger: Ledger
    rates: RateTable
    metrics: GatewayMetrics
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    limiter: RateLimiter | None = None
    # The cap on write requests in flight (overload.py); None when turned off.
    write_cap: SubmissionLimit | None = None
    workers: list[Any] = field(default_factory=list)
    _reference: tuple[float, JSON] | None = None
    _reference_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def msp_id(self) -> str:
        return self.ledger.msp_id

    def is_operator_key(self, key: str) -> bool:
        principal = self.keys.verify(key)
        return principal is not None and principal.is_operator

    def reference_data(self) -> JSON:
        """The contract's reference data (currencies, banks), cached for a minute."""
        with self._reference_lock:
            cached = self._reference
            if cached is not None and time.monotonic() - cached[0] < REFERENCE_DATA_TTL_SECONDS:
                return cached[1]
        data = self.ledger.get_reference_data()
        with self._reference_lock:
            self._reference = (time.monotonic(), data)
        return data

    def currencies(self) -> Currencies:
        """Currencies and exponents from the ledger; the standard table when it cannot be read."""
        try:
            currencies = self.reference_data().get("currencies")
        except LedgerError:
            currencies = None
        if isinstance(currencies, dict) and currencies:
            return Currencies({str(k): int(v) for k, v in currencies.items()})
        return Currencies(DEFAULT_EXPONENTS)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()


def egress_policy(config: GatewayConfig) -> EgressPolicy:
    """Where webhooks may go: public addresses, the allow-list, never this gateway itself."""
    try:
        allowed = validate_allow_list(config.webhook_allowed_targets)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return EgressPolicy(allowed=allowed, own=(config.host, config.port))


def services() -> Services:
    return cast(Services, current_app.extensions["bank_api"])


LedgerFactory = Callable[[GatewayConfig, GatewayMetrics], Ledger]


def create_app(
    config: GatewayConfig | dict[str, Any] | None = None,
    *,
    ledger: Ledger | None = None,
    ledger_factory: LedgerFactory | None = None,
) -> Flask:
    """Build a gateway app.

    ``config`` defaults to ``GatewayConfig.from_env()``. The ledger is, in order: the one
    given, one from ``ledger_factory``, or a ``FabricLedger`` on the profile's peer.
    """
    if config is None:
        config = GatewayConfig.from_env()
    elif isinstance(config, dict):
        config = GatewayConfig.from_mapping(config)
    logging.getLogger("gateway").setLevel(config.log_level.upper())

    metrics = GatewayMetrics()
    if ledger is None:
        if ledger_factory is None:
            from gateway.bank_api.fabric_ledger import FabricLedger

            ledger = FabricLedger.from_config(config, metrics)
        else:
            ledger = ledger_factory(config, metrics)

    db = Database(config.database_url)
    db.migrate()
    services_ = Services(
        config=config,
        db=db,
        keys=KeyStore(db),
        idempotency=IdempotencyStore(db, config.idempotency_lease_seconds, config.idempotency_wait_seconds),
        ledger=cast(Ledger, MeteredLedger(ledger, metrics)),
        rates=RateTable(config.fx_rates),
        metrics=metrics,
        egress=egress_policy(config),
        limiter=RateLimiter(
            TokenBuckets(config.rate_limit_key_per_second, config.rate_limit_key_burst),
            TokenBuckets(config.rate_limit_client_per_second, config.rate_limit_client_burst),
        ),
    )
    services_.keys.ensure_operator_key_file(config.operator_key_file)
    abandoned = services_.idempotency.expire_claims()
    if abandoned:
        log.info("%d idempotent request(s) left in flight by an earlier run can be retried now", abandoned)

    app = Flask("gateway.bank_api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["bank_api"] = services_
    register_problem_handlers(app)
    _register_request_metrics(app, metrics)
    _register_rate_limits(app, services_)
    # After the rate limits: a request refused for its rate must not take a write's place.
    from gateway.bank_api.overload import register_write_cap

    services_.write_cap = register_write_cap(app, config.max_concurrent_writes, services_.is_operator_key)
    from gateway.bank_api.console import register_console

    register_console(app)

    from gateway.bank_api.routes import register_blueprints

    register_blueprints(app, config.role)

    if config.role == REGULATOR:
        # The regulator's gateway completes and refunds nothing: its workers are the monitor and
        # the sender of its alert webhooks.
        if config.follow_events:
            from gateway.bank_api.alerts import start_monitor

            start_monitor(services_)
        if config.deliver_webhooks:
            from gateway.bank_api.workers import start_webhook_sender

            start_webhook_sender(services_)
    else:
        if config.follow_events or config.deliver_webhooks:
            from gateway.bank_api.workers import start_workers

            start_workers(services_, follow=config.follow_events, webhooks=config.deliver_webhooks)
        if config.follow_events and config.disclosure_standing_approval:
            from gateway.bank_api.disclosures import StandingApproval

            approval = StandingApproval(services_)
            approval.start()
            services_.workers.append(approval)
    return app


def _register_rate_limits(app: Flask, services_: Services) -> None:
    @app.before_request
    def _limit() -> None:
        if services_.limiter is not None:
            services_.limiter.check(presented_key(request), services_.is_operator_key)


# Label values come from these sets only: a client choosing its own method name or path must not
# be able to grow the number of metric series.
_METHOD_LABELS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _register_request_metrics(app: Flask, metrics: GatewayMetrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()
        current_request_id()
        check_query_string()

    @app.after_request
    def _record(response: Response) -> Response:
        started = g.get("request_started")
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in _METHOD_LABELS else "other"
        metrics.http_requests.labels(method, route, str(response.status_code)).inc()
        if started is not None:
            metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers[REQUEST_ID_HEADER] = current_request_id()
        return response
