"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, request

from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, requires
from gateway.bank_api.problems import problem_response
from gateway.bank_api.readiness import check_readiness
from gateway.bank_api.routes.common import json_response

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and answering (it does not look at the peer)."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when a payment can be made and completed now (readiness.py says what that takes)."""
    svc = services()
    found = check_readiness(svc)
    if not found.ready:
        extra: dict[str, object] = {"checks": found.checks}
        if found.missing_banks:
            extra["banks"] = found.missing_banks
        return problem_response(503, found.code, found.detail, {"Retry-After": str(found.retry_after)}, extra)
    return json_response({"status": "ready", "bank": svc.msp_id, "checks": found.checks})


@bp.get("/metrics")
def metrics() -> Response:
    """For the bank's own monitoring: from this machine (as Fabric's operations endpoints), or with the operator key."""
    if not _from_loopback():
        _require_operator()
    return Response(services().metrics.render(), mimetype="text/plain", content_type="text/plain; version=0.0.4")


def _from_loopback() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _require_operator() -> None:
    # The same check the API routes make, without wrapping this view in it (loopback needs no key).
    requires(OPERATOR)(lambda: None)()
