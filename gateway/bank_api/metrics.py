"""Prometheus metrics of one gateway (text format at /metrics).

Each app gets its own registry, so several apps in one process (tests) do not clash.
Under gunicorn, run one worker with threads (``--worker-class gthread``) so the numbers
describe the whole gateway; several worker processes would each report their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "bank_api_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "bank_api_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ledger_latency = Histogram(
            "bank_api_ledger_operation_duration_seconds",
            "Time of one ledger operation of the gateway (may be several Fabric calls), by outcome",
            ["operation", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fabric_latency = Histogram(
            "bank_api_fabric_call_duration_seconds",
            "Time of one Fabric call: an evaluate, or a submit up to its commit, by transaction and outcome",
            ["kind", "transaction", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pending_incoming = Gauge(
            "bank_api_pending_incoming_payments",
            "Interbank payments to this bank still initiated (not yet completed or rejected)",
            registry=self.registry,
        )
        self.payment_tasks = Gauge(
            "bank_api_payment_tasks_pending",
            "Payment tasks (completions, refunds, notifications) queued and not yet done, at the last sweep",
            registry=self.registry,
        )
        self.incoming_handled = Counter(
            "bank_api_incoming_payments_handled",
            "Incoming interbank payments this gateway completed or rejected",
            ["outcome"],
            registry=self.registry,
        )
        self.details_not_yet = Counter(
            "bank_api_counterparty_details_not_yet",
            "Asks for a payment's details that the other bank's peer had not committed yet (asked again shortly)",
            registry=self.registry,
        )
        self.completion_group = Histogram(
            "bank_api_completions_per_transaction",
            "Incoming payments completed by one transaction (CompletePayments groups them under load)",
            buckets=(1, 2, 4, 8, 16, 32, 50),
            registry=self.registry,
        )
        self.initiation_group = Histogram(
            "bank_api_initiations_per_transaction",
            "Outgoing payments initiated by one transaction (InitiatePayments groups them under load)",
            buckets=(1, 2, 4, 8, 16, 32, 50),
            registry=self.registry,
        )
        self.follower_events = Counter(
            "bank_api_follower_events",
            "Chaincode events read by the follower, by event name",
            ["event"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "bank_api_webhook_delivery_attempts",
            "Webhook delivery attempts, by outcome",
            ["outcome"],
            registry=self.registry,
        )

    @contextmanager
    def ledger_operation(self, operation: str) -> Iterator[None]:
        start = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.ledger_latency.labels(operation, outcome).observe(time.perf_counter() - start)

    @contextmanager
    def fabric_call(self, kind: str, transaction: str) -> Iterator[None]:
        start = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.fabric_latency.labels(kind, transaction, outcome).observe(time.perf_counter() - start)

    def render(self) -> bytes:
        return generate_latest(self.registry)
