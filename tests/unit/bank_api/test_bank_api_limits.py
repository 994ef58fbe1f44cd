"""Rate limits (429 with Retry-After) and the operations endpoint's exposure and label bounds."""

from __future__ import annotations

import pytest

from gateway.bank_api import ratelimit
from gateway.bank_api.ratelimit import TokenBuckets
from tests.unit.bank_api.conftest import Gateway, GatewayFactory

ELSEWHERE = {"REMOTE_ADDR": "203.0.113.7"}


def _assert_429(response) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_per_key_limit(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway("USBankMSP", rate_limit_key_per_second=0.01, rate_limit_key_burst=3)
    _, merchant = gateway.open_account("Busy")  # one operator request used
    headers = gateway.op(merchant)
    for _ in range(3):
        assert gateway.client.get("/v1/me", headers=headers).status_code == 200
    _assert_429(gateway.client.get("/v1/me", headers=headers))
    # Another key is not held back by this one.
    assert gateway.client.get("/v1/me", headers=gateway.op()).status_code == 200
    # Nor are health checks.
    assert gateway.client.get("/healthz", headers=headers).status_code == 200


def test_per_client_address_limit(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway("USBankMSP", rate_limit_client_per_second=0.01, rate_limit_client_burst=4)
    for attempt in range(4):  # invented keys do not escape the address's bucket
        response = gateway.client.get("/v1/me", headers=gateway.op(f"dtk_x_{attempt}"), environ_base=ELSEWHERE)
        assert response.status_code == 401
    _assert_429(gateway.client.get("/v1/me", headers=gateway.op("dtk_x_new"), environ_base=ELSEWHERE))
    assert gateway.client.get("/v1/me", headers=gateway.op()).status_code == 200  # other addresses are fine


def test_operator_recovery_actions_are_never_limited(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(
        "USBankMSP",
        rate_limit_key_per_second=0.01,
        rate_limit_key_burst=3,
        rate_limit_client_per_second=0.01,
        rate_limit_client_burst=3,
    )
    account, merchant = gateway.open_account("Compromised")
    keys = gateway.client.get(f"/v1/accounts/{account}/api-keys", headers=gateway.op()).get_json()["api_keys"]
    gateway.client.get("/v1/me", headers=gateway.op())
    _assert_429(gateway.client.get("/v1/me", headers=gateway.op()))
    _assert_429(gateway.client.get("/v1/me", headers=gateway.op(merchant)))
    frozen = gateway.client.post(f"/v1/accounts/{account}/freeze", json={"reason": "fraud"}, headers=gateway.op())
    assert frozen.status_code == 200 and frozen.get_json()["status"] == "frozen"
    revoked = gateway.client.delete(f"/v1/accounts/{account}/api-keys/{keys[0]['api_key_id']}", headers=gateway.op())
    assert revoked.status_code == 204
    # A merchant key gets no such pass on the same routes.
    _assert_429(
        gateway.client.post(f"/v1/accounts/{account}/freeze", json={"reason": "x"}, headers=gateway.op(merchant))
    )


def test_token_buckets_refill_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") == 0
    assert TokenBuckets(rate=0, burst=1).take("a") == 0  # off
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 10)
    for n in range(100):
        buckets.take(f"k{n}")
    assert len(buckets._buckets) == 10


def test_metrics_need_loopback_or_the_operator_key(us: Gateway) -> None:
    assert us.client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert us.client.get("/metrics", environ_base=ELSEWHERE).status_code == 401
    _, merchant = us.open_account("Curious")
    assert us.client.get("/metrics", headers=us.op(merchant), environ_base=ELSEWHERE).status_code == 403
    assert us.client.get("/metrics", headers=us.op(), environ_base=ELSEWHERE).status_code == 200


def test_metric_labels_are_bounded(us: Gateway) -> None:
    for method in ("FOO", "BAR", "X" * 50):
        us.client.open("/v1/me", method=method)
    for n in range(20):
        us.client.get(f"/no/such/route/{n}")
    text = us.client.get("/metrics").get_data(as_text=True)
    lines = [line for line in text.splitlines() if line.startswith("bank_api_http_requests_total")]
    assert not any("FOO" in line or "BAR" in line or "/no/such" in line for line in lines)
    assert any('method="other"' in line for line in lines)
    assert any('route="unmatched"' in line for line in lines)
