"""The regulator's alert rules on the real contract in memory: each fires on a crafted pattern and stays
quiet otherwise, alerts carry their evidence, can be acknowledged, and survive a restart of the
monitor neither lost nor raised twice."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from gateway.bank_api.alerts import RegulatorMonitor
from gateway.bank_api.storage.models import EventCheckpoint
from tests.unit.regulator.conftest import HK, REG, SG, US, Gateway, GatewayFactory, Ledger, handle_new


class Clock:
    """The monitor's wall clock, pinned to the channel's time plus what a test lets pass."""

    def __init__(self, contract: Ledger) -> None:
        self.contract = contract
        self.ahead = 0.0

    def __call__(self) -> datetime:
        return self.contract.channel.now + timedelta(seconds=self.ahead)


@pytest.fixture
def customers(contract: Ledger) -> Ledger:
    contract.open(US, "alice", "US")
    contract.open(HK, "shop", "HK")
    contract.open(SG, "sg-shop", "SG")
    contract.issue(US, "alice", 1_000_000)
    contract.issue(HK, "shop", 1_000_000, currency="USD")
    return contract


def _pay(contract: Ledger, key: str, amount: int, payer_bank: str = US, payer: str = "alice",
         payee_bank: str = HK, payee: str = "shop") -> str:  # fmt: skip
    request = {
        "idempotency_key": key, "payer_account": payer, "payee_bank": payee_bank, "payee_account": payee,
        "currency": "USD", "amount": amount, "pending_credits": contract.pending(payer_bank, payer),
    }  # fmt: skip
    payment_id: str = contract.submit(payer_bank, "InitiatePayment", request)["payment_id"]
    return payment_id


def _monitor(regulator: Gateway, contract: Ledger) -> tuple[RegulatorMonitor, Clock]:
    clock = Clock(contract)
    return RegulatorMonitor(regulator.services, clock=clock, retry_seconds=0.05), clock


def _put_rule(regulator: Gateway, rule: str, body: dict[str, Any]) -> Any:
    response = regulator.client.put(f"/v1/alert-rules/{rule}", json=body, headers=regulator.headers())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _alerts(regulator: Gateway, query: str = "") -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = regulator.ok(f"/v1/alerts{query}")["alerts"]
    return alerts


def test_a_single_payment_at_or_above_the_threshold_raises_an_alert(regulator: Gateway, customers: Ledger) -> None:
    monitor, _ = _monitor(regulator, customers)
    rules = _put_rule(regulator, "large_payment", {"enabled": True, "thresholds": {"USD": "100.00"}})
    assert rules["rules"]["large_payment"] == {"enabled": True, "thresholds": {"USD": "100.00"}}
    below = _pay(customers, "below", 9_999)
    at = _pay(customers, "at", 10_000)
    raised = handle_new(monitor, regulator)
    assert len(raised) == 1
    [alert] = _alerts(regulator)
    assert (alert["alert_id"], alert["rule"], alert["state"]) == (raised[0], "large_payment", "open")
    assert alert["subject"] == f"payment of 100.00 USD from {US} to {HK}"
    assert alert["evidence"] == {
        "payment_ids": [at], "payer_bank": US, "payee_bank": HK, "currency": "USD", "amount": "100.00",
        "threshold": "100.00", "created_at": "2025-01-06T09:00:00.000000Z",
    }  # fmt: skip
    assert below not in str(alert)
    assert regulator.ok(f"/v1/alerts/{alert['alert_id']}") == alert


def test_payments_initiated_in_one_group_are_each_judged(regulator: Gateway, customers: Ledger) -> None:
    """An InitiatePayments transaction has one event listing its payments (decision 0038)."""
    monitor, _ = _monitor(regulator, customers)
    _put_rule(regulator, "large_payment", {"enabled": True, "thresholds": {"USD": "100.00"}})
    pending = customers.pending(US, "alice")
    items = [
        {"idempotency_key": key, "payer_account": "alice", "payee_bank": bank, "payee_account": payee,
         "currency": "USD", "amount": amount, "pending_credits": pending}
        for key, amount, bank, payee in (("g-1", 10_000, HK, "shop"), ("g-2", 50, HK, "shop"),
                                         ("g-3", 20_000, SG, "sg-shop"))
    ]  # fmt: skip
    results = customers.submit(US, "InitiatePayments", {"payments": items})["results"]
    assert customers.channel.events[-1].name == "PaymentsInitiated"
    raised = handle_new(monitor, regulator)
    assert len(raised) == 2
    flagged = sorted(alert["evidence"]["payment_ids"][0] for alert in _alerts(regulator))
    assert flagged == sorted([results[0]["payment_id"], results[2]["payment_id"]])


def test_velocity_between_two_banks_by_count_and_by_amount(regulator: Gateway, customers: Ledger) -> None:
    monitor, _ = _monitor(regulator, customers)
    _put_rule(regulator, "velocity",
              {"enabled": True, "window_seconds": 600, "max_payments": 2, "max_amounts": {"USD": "10.00"}})  # fmt: skip
    first = _pay(customers, "v1", 400)
    customers.channel.advance(700)  # out of the window of the next ones
    second = _pay(customers, "v2", 400)
    _pay(customers, "other-way", 400, payer_bank=HK, payer="shop", payee_bank=US, payee="alice")
    _pay(customers, "other-pair", 400, payee_bank=SG, payee="sg-shop")
    assert handle_new(monitor, regulator) == []
    customers.channel.advance(60)
    third = _pay(customers, "v3", 400)  # two in the window: 8.00 USD, not more than 2 payments
    assert handle_new(monitor, regulator) == []
    customers.channel.advance(60)
    fourth = _pay(customers, "v4", 300)  # three in the window, 11.00 USD
    raised = handle_new(monitor, regulator)
    assert len(raised) == 2
    amount, count = sorted(_alerts(regulator), key=lambda alert: "currency" not in alert["evidence"])
    assert count["subject"] == f"3 payments from {US} to {HK} within 600 s (limit 2)"
    assert count["evidence"]["payment_ids"] == [second, third, fourth]
    assert first not in count["evidence"]["payment_ids"]
    assert amount["evidence"] | {"payment_ids": None} == {
        "payer_bank": US, "payee_bank": HK, "window_seconds": 600, "currency": "USD", "total": "11.00",
        "limit": "10.00", "payments": 3, "payment_ids": None, "triggered_by": fourth,
        "window_start": "2025-01-06T09:03:40Z", "window_end": "2025-01-06T09:13:40.000000Z",
    }  # fmt: skip
    # A fifth in the same window is the same breach: no new alert.
    customers.channel.advance(10)
    _pay(customers, "v5", 100)
    assert handle_new(monitor, regulator) == []


def test_payments_left_initiated_or_rejected_too_long(regulator: Gateway, customers: Ledger) -> None:
    monitor, clock = _monitor(regulator, customers)
    _put_rule(regulator, "stale_payment", {"enabled": True, "initiated_seconds": 60, "rejected_seconds": 120})
    waiting = _pay(customers, "waiting", 100)
    rejected = _pay(customers, "rejected", 100)
    customers.submit(HK, "RejectPayment", {"payment_id": rejected, "reason": "account_frozen"})
    done = _pay(customers, "done", 100)
    customers.submit(HK, "CompletePayment", {"payment_id": done})
    clock.ahead = 60
    assert monitor.scan() == []
    clock.ahead = 61
    assert len(monitor.scan()) == 1
    [alert] = _alerts(regulator)
    assert alert["evidence"] | {"since": None} == {
        "payment_ids": [waiting], "status": "initiated", "age_seconds": 61, "limit_seconds": 60,
        "payer_bank": US, "payee_bank": HK, "waiting_for": HK, "since": None,
    }  # fmt: skip
    clock.ahead = 121
    [second] = monitor.scan()  # the rejected one; the initiated one is not raised again
    assert regulator.ok(f"/v1/alerts/{second}")["evidence"]["waiting_for"] == US
    assert regulator.ok(f"/v1/alerts/{second}")["evidence"]["payment_ids"] == [rejected]
    customers.submit(US, "RefundPayment", {"payment_id": rejected})
    clock.ahead = 10_000
    assert monitor.scan() == []
    assert len(_alerts(regulator, "?rule=stale_payment")) == 2


def test_a_settlement_cycle_unconfirmed_past_its_deadline(regulator: Gateway, customers: Ledger) -> None:
    monitor, clock = _monitor(regulator, customers)
    _put_rule(regulator, "unconfirmed_cycle", {"enabled": True, "deadline_seconds": 3600})
    for key in ("c1", "c2"):
        customers.submit(HK, "CompletePayment", {"payment_id": _pay(customers, key, 100)})
    customers.submit(HK, "OpenSettlementCycle", args=["late"])
    customers.submit(US, "ConfirmSettlement", args=["late", "RTGS-1"])
    customers.submit(HK, "CompletePayment", {"payment_id": _pay(customers, "c3", 100)})
    customers.submit(HK, "OpenSettlementCycle", args=["on-time"])
    customers.submit(US, "ConfirmSettlement", args=["on-time", "RTGS-2"])
    customers.submit(HK, "ConfirmSettlement", args=["on-time", "RTGS-3"])
    clock.ahead = 3600
    assert monitor.scan() == []
    clock.ahead = 3601
    [alert_id] = monitor.scan()
    alert = regulator.ok(f"/v1/alerts/{alert_id}")
    assert alert["subject"] == f"settlement cycle late unconfirmed by {HK} 3601 s after opening (limit 3600 s)"
    assert alert["evidence"] == {
        "cycle_id": "late", "opened_at": "2025-01-06T09:00:00Z", "pending_banks": [HK], "payments": 2,
        "limit_seconds": 3600,
    }  # fmt: skip
    assert monitor.scan() == []


def test_disabled_rules_and_rules_without_thresholds_stay_quiet(regulator: Gateway, customers: Ledger) -> None:
    monitor, clock = _monitor(regulator, customers)
    _pay(customers, "big", 900_000)
    for _ in range(5):
        _pay(customers, f"many-{_}", 1)
    assert handle_new(monitor, regulator) == []  # the defaults set no amount or count limits
    _put_rule(regulator, "stale_payment", {"enabled": False, "initiated_seconds": 1, "rejected_seconds": 1})
    clock.ahead = 100_000
    assert monitor.scan() == []
    assert _alerts(regulator) == []


def test_alerts_are_acknowledged_once(regulator: Gateway, customers: Ledger) -> None:
    monitor, _ = _monitor(regulator, customers)
    _put_rule(regulator, "large_payment", {"enabled": True, "thresholds": {"USD": "1.00"}})
    _pay(customers, "a", 100)
    _pay(customers, "b", 100)
    first, second = handle_new(monitor, regulator)

    def ack(alert_id: str, note: str | None) -> Any:
        body = {} if note is None else {"note": note}
        return regulator.client.post(f"/v1/alerts/{alert_id}/acknowledgement", json=body, headers=regulator.headers())

    response = ack(first, "reviewed: trade invoice on file")
    assert response.status_code == 200
    acknowledged = response.get_json()
    assert (acknowledged["state"], acknowledged["note"]) == ("acknowledged", "reviewed: trade invoice on file")
    assert acknowledged["acknowledged_by"] == regulator.operator_key.split("_")[1]
    assert ack(first, "reviewed: trade invoice on file").get_json() == acknowledged
    again = ack(first, "something else")
    assert (again.status_code, again.get_json()["code"]) == (409, "already_acknowledged")
    assert [a["alert_id"] for a in _alerts(regulator, "?state=open")] == [second]
    assert [a["alert_id"] for a in _alerts(regulator, "?state=acknowledged")] == [first]
    rows = regulator.get("/v1/alerts?format=csv").get_data(as_text=True).splitlines()
    assert rows[0] == "alert_id,rule,state,raised_at,subject,acknowledged_at,acknowledged_by,note,evidence"
    assert len(rows) == 3
    assert ack("0" * 16, None).status_code == 404
    assert ack("bad id!", None).status_code == 400
    assert ack(second, "x" * 201).status_code == 400


@pytest.mark.parametrize(
    ("rule", "body", "status", "detail"),
    [
        ("nonsense", {}, 404, "no alert rule 'nonsense'"),
        ("large_payment", {"enabled": True}, 400, "large_payment needs every one of its settings; missing: thresholds"),
        ("large_payment", {"enabled": "yes", "thresholds": {}}, 400, "enabled must be true or false"),
        ("large_payment", {"enabled": True, "thresholds": {"USD": 100}}, 400,
         "thresholds.USD must be a decimal string"),
        ("large_payment", {"enabled": True, "thresholds": {"XAU": "1"}}, 400, "currency XAU is not used"),
        ("large_payment", {"enabled": True, "thresholds": []}, 400, "thresholds must be an object of currency"),
        ("velocity", {"enabled": True, "window_seconds": 0, "max_payments": None, "max_amounts": {}}, 400,
         "window_seconds must be a whole number from 1 to 2592000"),
        ("velocity", {"enabled": True, "window_seconds": 60, "max_payments": 0, "max_amounts": {}}, 400,
         "max_payments must be a whole number from 1"),
        ("stale_payment", {"enabled": True, "initiated_seconds": 1, "rejected_seconds": 1, "x": 1}, 400,
         "unknown field(s): x"),
        ("stale_payment", {"enabled": True, "initiated_seconds": 1, "rejected_seconds": 1, "thresholds": {}}, 400,
         "unknown field(s) for stale_payment: thresholds"),
    ],
)  # fmt: skip
def test_bad_rule_settings_are_refused_by_name(
    regulator: Gateway, rule: str, body: dict[str, Any], status: int, detail: str
) -> None:
    response = regulator.client.put(f"/v1/alert-rules/{rule}", json=body, headers=regulator.headers())
    assert response.status_code == status, response.get_json()
    assert detail in response.get_json()["detail"]


def test_no_alert_is_lost_or_raised_twice_across_restarts(
    make_gateway: GatewayFactory, customers: Ledger, tmp_path: Any
) -> None:
    """The monitor's own thread, stopped and started again on the same database."""
    database = {"database_url": f"sqlite:///{tmp_path / 'regulator.sqlite'}"}
    first = make_gateway(REG, role="regulator", **database)
    _put_rule(first, "large_payment", {"enabled": True, "thresholds": {"USD": "50.00"}})
    before = [_pay(customers, f"before-{index}", 5000) for index in range(3)]
    monitor = RegulatorMonitor(first.services, retry_seconds=0.05)
    monitor.start()
    assert _wait(lambda: len(_alerts(first)) == 3)
    monitor.stop()
    with first.services.db.session(write=False) as session:
        assert session.get(EventCheckpoint, "regulator-monitor") is not None
    # While the monitor is down, more payments; then a restart on a new app and the same database.
    after = [_pay(customers, f"after-{index}", 5000) for index in range(2)]
    second = make_gateway(REG, role="regulator", **database)
    restarted = RegulatorMonitor(second.services, retry_seconds=0.05)
    restarted.start()
    try:
        assert _wait(lambda: len(_alerts(second)) == 5)
        time.sleep(0.3)  # a repeat would show up now
        alerts = _alerts(second)
        assert sorted(a["evidence"]["payment_ids"][0] for a in alerts) == sorted(before + after)
    finally:
        restarted.stop()
    # A crash that lost the checkpoint: everything is handled again, nothing is raised twice.
    with second.services.db.session() as session:
        session.delete(session.get(EventCheckpoint, "regulator-monitor"))
    last = list(second.ledger.events(0, None))[-1]
    again = RegulatorMonitor(second.services, retry_seconds=0.05)
    again.start()
    try:
        assert _wait(lambda: again.load_checkpoint() == (last.block_number, last.transaction_id))
        assert len(_alerts(second)) == 5
    finally:
        again.stop()


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
