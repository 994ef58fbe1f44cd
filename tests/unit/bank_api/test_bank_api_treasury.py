"""Corporate groups and standing orders on the fake network: scoping, schedules, sweeps, exactly once, failures.

The scheduler's clock is injected, so a run is made due by moving the clock, never by waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.bank_api.ledger import JSON, LedgerUnavailable
from gateway.bank_api.standing_orders import StandingOrders, add_months, due_time
from gateway.bank_api.storage.models import StandingOrderRun, WebhookDelivery
from gateway.bank_api.workers import PaymentFollower, PaymentSweeper
from tests.unit.bank_api.conftest import Gateway, ledger_snapshot
from tests.unit.bank_api.fake_ledger import FakeNetwork

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _h(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


def _group(us: Gateway, group_id: str = "acme", *members: tuple[str, str]) -> str:
    made = us.client.post("/v1/groups", json={"group_id": group_id, "name": "Acme Group"}, headers=us.op())
    assert made.status_code == 201, made.get_json()
    for bank, account in members:
        added = us.client.post(
            f"/v1/groups/{group_id}/accounts", json={"bank": bank, "account_id": account}, headers=us.op()
        )
        assert added.status_code == 201, added.get_json()
    key = us.client.post(f"/v1/groups/{group_id}/api-keys", json={"label": "treasurer"}, headers=us.op())
    assert key.status_code == 201, key.get_json()
    treasurer: str = key.get_json()["api_key"]
    return treasurer


def _order(us: Gateway, key: str, idem: str, group_id: str = "acme", **body: Any) -> Any:
    return us.client.post(f"/v1/groups/{group_id}/standing-orders", json=body, headers=_h(key, idem))


def _runs(us: Gateway, key: str, order_id: str, group_id: str = "acme") -> list[JSON]:
    response = us.client.get(f"/v1/groups/{group_id}/standing-orders/{order_id}/runs", headers=_h(key))
    assert response.status_code == 200, response.get_json()
    runs: list[JSON] = response.get_json()["runs"]
    return runs


def _conserved(network: FakeNetwork, currency: str = "USD") -> None:
    assert network.total_balances(currency) == network.total_supply(currency)


def _settle(network: FakeNetwork, *gateways: Gateway) -> None:
    """Drive the followers by hand until the interbank payments have moved on, as their threads would."""
    followers = [PaymentFollower(g.services) for g in gateways]
    for _ in range(2):
        for follower in followers:
            for event in list(network.events):
                follower.handle_with_retries(event)


def test_due_times_count_from_the_start() -> None:
    start = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    assert add_months(start, 1) == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert due_time(start, "month", 2) == datetime(2026, 3, 31, 9, 0, tzinfo=UTC)  # no drift after February
    assert due_time(start, "week", 1) == start + timedelta(days=7)
    assert due_time(start, None, 5) == start


def test_treasurer_sees_and_pays_only_its_group(us: Gateway, hk: Gateway, network: FakeNetwork) -> None:
    a, a_key = us.open_account("Acme US Inc")
    b, _ = us.open_account("Acme Trading LLC")
    outsider, _ = us.open_account("Someone Else")
    hk_entity, _ = hk.open_account("Acme HK Ltd", "HK")
    us.issue(a, "100.00")
    treasurer = _group(us, "acme", ("USBankMSP", a), ("USBankMSP", b), ("HKBankMSP", hk_entity))
    _group(us, "other", ("USBankMSP", outsider))

    balances = us.client.get("/v1/groups/acme/balances", headers=_h(treasurer)).get_json()
    assert balances["totals"] == {"USD": "100.00"}
    assert [x["account_id"] for x in balances["accounts"]] == [a, b]
    assert balances["elsewhere"] == [{"bank": "HKBankMSP", "account_id": hk_entity}]
    # Its key reaches its group only: not another group, not an account's own routes.
    assert us.client.get("/v1/groups/other/balances", headers=_h(treasurer)).status_code == 403
    assert us.client.get(f"/v1/accounts/{a}", headers=_h(treasurer)).status_code == 403
    assert us.client.get("/v1/groups/acme", headers=_h(a_key)).status_code == 403
    assert us.client.post("/v1/groups/acme/api-keys", json={}, headers=_h(treasurer)).status_code == 403

    pay = {"from_account": a, "to_bank": "USBankMSP", "to_account": b, "currency": "USD", "amount": "30.00"}
    paid = us.client.post("/v1/groups/acme/payments", json=pay, headers=_h(treasurer, "sweep-1"))
    assert paid.status_code == 201, paid.get_json()
    again = us.client.post("/v1/groups/acme/payments", json=pay, headers=_h(treasurer, "sweep-1"))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert network.balance("USBankMSP", b, "USD") == 3000  # once
    abroad = {**pay, "to_bank": "HKBankMSP", "to_account": hk_entity, "amount": "20.00"}
    sent = us.client.post("/v1/groups/acme/payments", json=abroad, headers=_h(treasurer, "abroad-1"))
    assert sent.status_code == 201 and sent.get_json()["status"] == "initiated", sent.get_json()
    _settle(network, us, hk)
    assert network.balance("HKBankMSP", hk_entity, "USD") == 2000
    # The treasurer follows the group's payments; another group's treasurer does not see them.
    other = us.client.post("/v1/groups/other/api-keys", json={}, headers=us.op()).get_json()["api_key"]
    for payment_id in (paid.get_json()["payment_id"], sent.get_json()["payment_id"]):
        shown = us.client.get(f"/v1/payments/{payment_id}", headers=_h(treasurer))
        assert shown.status_code == 200, shown.get_json()
        assert us.client.get(f"/v1/payments/{payment_id}", headers=_h(other)).status_code == 404
    assert (
        us.client.get(f"/v1/payments/{sent.get_json()['payment_id']}", headers=_h(treasurer)).get_json()["status"]
        == "completed"
    )
    # Not to an account outside the group, and not from one.
    refused = us.client.post(
        "/v1/groups/acme/payments", json={**pay, "to_account": outsider}, headers=_h(treasurer, "out-1")
    )
    assert refused.status_code == 400 and refused.get_json()["code"] == "not_a_group_account"
    assert "to_account" in refused.get_json()["detail"]
    _conserved(network)


def test_daily_payment_runs_once_per_period(us: Gateway, network: FakeNetwork) -> None:
    a, _ = us.open_account("Acme US Inc")
    b, _ = us.open_account("Acme Payroll")
    us.issue(a, "100.00")
    treasurer = _group(us, "acme", ("USBankMSP", a), ("USBankMSP", b))
    clock = Clock(T0)
    orders = StandingOrders(us.services, clock=clock)
    made = _order(
        us, treasurer, "rent", kind="payment", from_account=a, to_bank="USBankMSP", to_account=b,
        currency="USD", amount="10.00", every="day", start_at="2026-12-01T09:00:00Z",
    )  # fmt: skip
    assert made.status_code == 201, made.get_json()
    order = made.get_json()
    assert (order["status"], order["next_due_at"], order["amount"]) == ("active", "2026-12-01T09:00:00Z", "10.00")

    clock.now = T0 - timedelta(seconds=1)
    assert orders.run_due()["standing_order_runs_claimed"] == 0
    clock.now = T0
    assert orders.run_due() == {"standing_order_runs_claimed": 1, "standing_order_runs_paid": 1}
    assert orders.run_due() == {"standing_order_runs_claimed": 0}  # the same period never twice
    clock.now = T0 + timedelta(days=1, hours=3)
    orders.run_due()
    runs = _runs(us, treasurer, order["order_id"])
    assert [(r["due_at"], r["status"], r["amount"]) for r in runs] == [
        ("2026-12-02T09:00:00Z", "paid", "10.00"),
        ("2026-12-01T09:00:00Z", "paid", "10.00"),
    ]
    assert network.balance("USBankMSP", b, "USD") == 2000
    shown = us.client.get(f"/v1/groups/acme/standing-orders/{order['order_id']}", headers=_h(treasurer)).get_json()
    assert shown["next_due_at"] == "2026-12-03T09:00:00Z"
    _conserved(network)


def test_a_once_order_finishes_and_a_cancelled_one_stops(us: Gateway, network: FakeNetwork) -> None:
    a, _ = us.open_account("Acme US Inc")
    b, _ = us.open_account("Acme Payroll")
    us.issue(a, "100.00")
    treasurer = _group(us, "acme", ("USBankMSP", a), ("USBankMSP", b))
    clock = Clock(T0)
    orders = StandingOrders(us.services, clock=clock)
    common = {"kind": "payment", "from_account": a, "to_bank": "USBankMSP", "to_account": b, "currency": "USD"}
    once = _order(us, treasurer, "once", **common, amount="5.00", start_at="2026-12-01T09:00:00Z").get_json()
    weekly = _order(us, treasurer, "weekly", **common, amount="7.00", every="week", start_at="2026-12-01T09:00:00Z")
    weekly_id = weekly.get_json()["order_id"]
    cancelled = us.client.post(f"/v1/groups/acme/standing-orders/{weekly_id}/cancellation", headers=_h(treasurer))
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    clock.now = T0 + timedelta(days=30)
    orders.run_due()
    orders.run_due()
    listed = us.client.get("/v1/groups/acme/standing-orders", headers=_h(treasurer)).get_json()["standing_orders"]
    assert {o["order_id"]: o["status"] for o in listed} == {once["order_id"]: "finished", weekly_id: "cancelled"}
    assert network.balance("USBankMSP", b, "USD") == 500
    assert _runs(us, treasurer, weekly_id) == []


def test_cross_bank_sweep_moves_the_excess_and_top_up_fills_a_shortfall(
    us: Gateway, hk: Gateway, network: FakeNetwork
) -> None:
    ops, _ = us.open_account("Acme US Operations")
    local_header, _ = us.open_account("Acme US Header")
    header, _ = hk.open_account("Acme Group Treasury", "HK")
    us.issue(ops, "250.00")
    us.issue(local_header, "100.00")
    treasurer = _group(us, "acme", ("USBankMSP", ops), ("USBankMSP", local_header), ("HKBankMSP", header))
    clock = Clock(T0)
    orders = StandingOrders(us.services, clock=clock)
    sweep = _order(
        us, treasurer, "sweep", kind="sweep", account=ops, header_bank="HKBankMSP", header_account=header,
        currency="USD", target_balance="50.00", every="day", start_at="2026-12-01T09:00:00Z",
    )  # fmt: skip
    assert sweep.status_code == 201, sweep.get_json()
    orders.run_due()
    _settle(network, us, hk)
    assert network.balance("USBankMSP", ops, "USD") == 5000
    assert network.balance("HKBankMSP", header, "USD") == 20000
    clock.now = T0 + timedelta(days=1)
    orders.run_due()  # at its target: nothing to move, and no payment
    runs = _runs(us, treasurer, sweep.get_json()["order_id"])
    assert [(r["status"], r["amount"]) for r in runs] == [("nothing_due", None), ("paid", "200.00")]
    assert runs[1]["payee_bank"] == "HKBankMSP" and len(runs[1]["payment_id"]) == 64

    # A zero-balance sweep with top-up from a header account at this bank.
    us.issue(ops, "0.01", ref="dep-extra")
    both = _order(
        us, treasurer, "zba", kind="sweep", account=ops, header_bank="USBankMSP", header_account=local_header,
        currency="USD", target_balance="80.00", top_up=True, every="day", start_at="2026-12-02T09:00:00Z",
    )  # fmt: skip
    assert both.status_code == 201, both.get_json()
    orders.run_due()
    assert network.balance("USBankMSP", ops, "USD") == 8000
    assert network.balance("USBankMSP", local_header, "USD") == 10000 - 2999
    _conserved(network)


class _CommitsThenFails:
    """A ledger whose payment commits but whose answer is lost (the gateway dies, or the commit wait ends)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def transfer(self, *args: Any) -> JSON:
        self._ledger.transfer(*args)
        raise LedgerUnavailable("the commit was not confirmed in time")


def test_a_run_resumed_after_a_restart_pays_once(us: Gateway, network: FakeNetwork) -> None:
    a, _ = us.open_account("Acme US Inc")
    b, _ = us.open_account("Acme Payroll")
    us.issue(a, "100.00")
    treasurer = _group(us, "acme", ("USBankMSP", a), ("USBankMSP", b))
    body = {"kind": "payment", "from_account": a, "to_bank": "USBankMSP", "to_account": b, "currency": "USD"}
    order_id = _order(us, treasurer, "r", **body, amount="25.00", every="day", start_at="2026-12-01T09:00:00Z")
    order_id = order_id.get_json()["order_id"]

    # First process: claims the run, pays it, and dies before it could record the payment.
    first = StandingOrders(us.services, clock=Clock(T0))
    first.ledger = _CommitsThenFails(us.services.ledger)
    assert first.run_due() == {"standing_order_runs_claimed": 1, "standing_order_runs_pending": 1}
    assert network.balance("USBankMSP", b, "USD") == 2500
    # The restarted process (a new scheduler on the same database) finds the run pending and resumes it.
    second = StandingOrders(us.services, clock=Clock(T0 + timedelta(minutes=1)))
    assert second.run_due() == {"standing_order_runs_claimed": 0, "standing_order_runs_paid": 1}
    assert network.balance("USBankMSP", b, "USD") == 2500  # paid once
    [run] = _runs(us, treasurer, order_id)
    assert (run["status"], run["attempts"]) == ("paid", 2)  # the lost answer, then the repeat

    # A process that died between the claim and the payment: the next one pays it, once.
    third = StandingOrders(us.services, clock=Clock(T0 + timedelta(days=1)))
    assert third.claim_due(third.now()) == 1
    fourth = StandingOrders(us.services, clock=Clock(T0 + timedelta(days=1)))
    assert fourth.run_due() == {"standing_order_runs_claimed": 0, "standing_order_runs_paid": 1}
    assert network.balance("USBankMSP", b, "USD") == 5000
    _conserved(network)


def test_a_failed_run_is_recorded_and_the_next_one_runs(us: Gateway, network: FakeNetwork) -> None:
    a, _ = us.open_account("Acme US Inc")
    b, _ = us.open_account("Acme Payroll")
    us.issue(a, "10.00")
    treasurer = _group(us, "acme", ("USBankMSP", a), ("USBankMSP", b))
    body = {"kind": "payment", "from_account": a, "to_bank": "USBankMSP", "to_account": b, "currency": "USD"}
    order_id = _order(us, treasurer, "f", **body, amount="25.00", every="day", start_at="2026-12-01T09:00:00Z")
    order_id = order_id.get_json()["order_id"]
    receiver = us.client.post(
        "/v1/webhooks", json={"url": "https://treasury.example/hooks"}, headers=_h(treasurer)
    ).get_json()
    clock = Clock(T0)
    orders = StandingOrders(us.services, clock=clock)
    assert orders.run_due()["standing_order_runs_failed"] == 1
    us.issue(a, "20.00", ref="dep-more")
    clock.now = T0 + timedelta(days=1)
    assert orders.run_due()["standing_order_runs_paid"] == 1
    us.client.post(f"/v1/accounts/{b}/freeze", json={"reason": "review"}, headers=us.op())
    clock.now = T0 + timedelta(days=2)
    assert orders.run_due()["standing_order_runs_failed"] == 1
    runs = _runs(us, treasurer, order_id)
    assert [(r["status"], r["reason"]) for r in runs] == [
        ("failed", "account_frozen"),
        ("paid", None),
        ("failed", "insufficient_funds"),
    ]
    assert network.balance("USBankMSP", a, "USD") == 500
    with us.services.db.session(write=False) as session:
        types = sorted(
            d.event_type
            for d in session.query(WebhookDelivery).filter(WebhookDelivery.subscription_id == receiver["id"])
        )
    assert types == [
        "standing_order.run_failed",
        "standing_order.run_failed",
        "standing_order.run_paid",
    ]
    _conserved(network)


def test_the_sweeper_runs_due_orders_and_a_landing_payment_triggers_a_sweep(
    us: Gateway, hk: Gateway, network: FakeNetwork
) -> None:
    ops, _ = us.open_account("Acme US Operations")
    header, _ = us.open_account("Acme US Header")
    payer, payer_key = hk.open_account("A customer", "HK")
    hk.issue(payer, "40.00")
    treasurer = _group(us, "acme", ("USBankMSP", ops), ("USBankMSP", header))
    made = _order(
        us, treasurer, "s", kind="sweep", account=ops, header_bank="USBankMSP", header_account=header,
        currency="USD", target_balance="0", every="month", on_credit=True,
    )  # fmt: skip
    assert made.status_code == 201, made.get_json()
    sweeper = PaymentSweeper(us.services)
    assert sweeper.sweep()["standing_order_runs_nothing_due"] == 1  # start_at defaults to now
    paid = hk.client.post(
        "/v1/payments",
        json={"payee_bank": "USBankMSP", "payee_account": ops, "currency": "USD", "amount": "40.00"},
        headers=_h(payer_key, "p1"),
    )
    assert paid.status_code == 201, paid.get_json()
    _settle(network, us, hk)
    assert network.balance("USBankMSP", ops, "USD") == 4000
    assert sweeper.sweep()["standing_order_runs_paid"] == 1
    assert network.balance("USBankMSP", ops, "USD") == 0
    assert network.balance("USBankMSP", header, "USD") == 4000
    runs = _runs(us, treasurer, made.get_json()["order_id"])
    assert [r["trigger"] for r in runs] == ["credit", "schedule"]
    _conserved(network)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "standing"}, "kind"),
        ({"kind": "payment", "to_bank": "USBankMSP", "currency": "USD", "amount": "1.00"}, "from_account"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "every": "hour"}, "every"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "start_at": "tomorrow"}, "start_at"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "start_at": "2020-01-01T00:00:00Z"}, "start_at"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": 1.5}, "amount"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "target_balance": "1.00"}, "target_balance"),
        ({"kind": "payment", "from_account": "Z", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00"}, "from_account"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": "0", "every": "day", "top_up": True}, "top_up"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": "-1", "every": "day"}, "target_balance"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": "0", "every": "day", "on_credit": "yes"}, "on_credit"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": "0"}, "every"),
        ({"kind": None, "currency": "USD"}, "kind"),
        ({"kind": "payment", "from_account": 5, "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00"}, "from_account"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "every": 1}, "every"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "start_at": 20261201}, "start_at"),
        ({"kind": "payment", "from_account": "A", "to_bank": "USBankMSP", "to_account": "B", "currency": "USD",
          "amount": "1.00", "top_up": False}, "unknown field(s): top_up"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": "0", "every": "day", "amount": "1.00"}, "unknown field(s): amount"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": 0, "every": "day"}, "target_balance"),
        ({"kind": "sweep", "account": "A", "header_bank": "HKBankMSP", "header_account": "H", "currency": "USD",
          "target_balance": "0\n", "every": "day"}, "target_balance"),
    ],
)  # fmt: skip
def test_bad_standing_orders_are_refused_naming_the_field(
    us: Gateway, network: FakeNetwork, body: dict[str, Any], field: str
) -> None:
    us.ledger.open_account("A", "Acme", "US", "KYC-1")
    us.ledger.open_account("B", "Acme B", "US", "KYC-2")
    treasurer = _group(us, "acme", ("USBankMSP", "A"), ("USBankMSP", "B"), ("HKBankMSP", "H"))
    response = _order(us, treasurer, "bad", **body)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["detail"]
    with us.services.db.session(write=False) as session:
        assert session.query(StandingOrderRun).count() == 0


def test_bad_group_requests_are_refused(us: Gateway) -> None:
    assert us.client.post("/v1/groups", json={"group_id": "Acme!", "name": "x"}, headers=us.op()).status_code == 400
    assert us.client.post("/v1/groups", json={"name": "x"}, headers=us.op()).get_json()["detail"] == (
        "group_id is required"
    )
    _group(us, "acme")
    again = us.client.post("/v1/groups", json={"group_id": "acme", "name": "x"}, headers=us.op())
    assert again.status_code == 409 and again.get_json()["code"] == "group_exists"
    assert us.client.get("/v1/groups/nope", headers=us.op()).status_code == 404
    unknown = us.client.post("/v1/groups/acme/accounts", json={"account_id": "missing"}, headers=us.op())
    assert unknown.status_code == 404, unknown.get_json()
    bank = us.client.post("/v1/groups/acme/accounts", json={"bank": "XXBankMSP", "account_id": "a"}, headers=us.op())
    assert bank.status_code == 400 and "bank" in bank.get_json()["detail"]
    extra = us.client.post("/v1/groups/acme/accounts", json={"account_id": "a", "x": 1}, headers=us.op())
    assert extra.status_code == 400 and "x" in extra.get_json()["detail"]
    missing = us.client.get("/v1/groups/acme/standing-orders/so_" + "0" * 32, headers=us.op())
    assert missing.status_code == 404 and missing.get_json()["code"] == "standing_order_not_found"
    assert us.client.get("/v1/groups/acme/standing-orders/nope", headers=us.op()).status_code == 400


def test_group_bodies_of_the_wrong_shape_are_refused_by_name(us: Gateway, network: FakeNetwork) -> None:
    us.ledger.open_account("A", "Acme", "US", "KYC-1")
    us.ledger.open_account("B", "Acme B", "US", "KYC-2")
    treasurer = _group(us, "acme", ("USBankMSP", "A"), ("USBankMSP", "B"))
    order = _order(us, treasurer, "o1", kind="payment", from_account="A", to_bank="USBankMSP", to_account="B",
                   currency="USD", amount="1.00", every="day")  # fmt: skip
    assert order.status_code == 201, order.get_json()
    order_id = order.get_json()["order_id"]
    before = (ledger_snapshot(us), us.client.get("/v1/groups/acme", headers=us.op()).get_json())
    refusals: list[tuple[str, dict[str, str], Any, str, str]] = [
        ("/v1/groups", us.op(), {"group_id": "acme2", "name": 5}, "name must be a string", "invalid_request"),
        ("/v1/groups", us.op(), {"group_id": 7, "name": "x"}, "group_id must be a-z, 0-9, _ and -", "invalid_request"),
        ("/v1/groups", us.op(), {"group_id": "acme2", "name": "x", "owner": "y"}, "unknown field(s): owner",
         "invalid_request"),
        ("/v1/groups/acme/accounts", us.op(), {"bank": "", "account_id": "C"}, "bank must not be empty",
         "invalid_request"),
        ("/v1/groups/acme/accounts", us.op(), {"bank": "9Bank", "account_id": "C"}, "bank is malformed: an MSP id",
         "invalid_request"),
        ("/v1/groups/acme/accounts", us.op(), {"account_id": None}, "account_id", "invalid_request"),
        ("/v1/groups/acme/api-keys", us.op(), {"label": ["x"]}, "label must be a string", "invalid_request"),
        ("/v1/groups/acme/payments", _h(treasurer, "p1"), {"from_account": "A", "to_bank": "USBankMSP",
         "to_account": "B", "currency": "USD", "amount": 1}, "amount", "invalid_amount"),
        ("/v1/groups/acme/payments", _h(treasurer, "p2"), {"from_account": "A", "to_bank": "USBankMSP",
         "to_account": "B", "currency": "USD", "amount": "1.00", "remittance": "a\u0000"}, "remittance",
         "invalid_request"),
        (f"/v1/groups/acme/standing-orders/{order_id}/cancellation", _h(treasurer), {"now": True},
         "unknown field(s): now", "invalid_request"),
    ]  # fmt: skip
    for path, headers, body, detail, code in refusals:
        response = us.client.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, response.get_json())
        assert detail in response.get_json()["detail"] and response.get_json()["code"] == code, response.get_json()
    assert (ledger_snapshot(us), us.client.get("/v1/groups/acme", headers=us.op()).get_json()) == before
    shown = us.client.get(f"/v1/groups/acme/standing-orders/{order_id}", headers=_h(treasurer)).get_json()
    assert shown["status"] == "active"
    # Left out or null, a treasurer key's label is chosen for it.
    assert us.client.post("/v1/groups/acme/api-keys", json={"label": None}, headers=us.op()).status_code == 201
    assert us.client.post("/v1/groups/acme/api-keys", headers=us.op()).status_code == 201


def test_every_key_may_ask_who_it_is(us: Gateway) -> None:
    # Found by fuzzing with a treasurer key: /v1/me answered an undocumented 403 to treasurer (and
    # attestor) keys, while the console's login asks it of every key.
    account, merchant = us.open_account("Acme US Inc")
    treasurer = _group(us, "acme", ("USBankMSP", account))
    attestor = us.client.post("/v1/attestors/inspect-co/api-keys", json={}, headers=us.op()).get_json()["api_key"]
    expected = {
        "operator": (us.op(), {"account_id": None}),
        "merchant": (_h(merchant), {"account_id": account}),
        "treasurer": (_h(treasurer), {"account_id": None, "group_id": "acme"}),
        "attestor": (_h(attestor), {"account_id": None, "attestor_id": "inspect-co"}),
    }
    for role, (headers, scope) in expected.items():
        response = us.client.get("/v1/me", headers=headers)
        assert response.status_code == 200, (role, response.get_json())
        me = response.get_json()
        assert me == {"role": role, "key_id": me["key_id"], "bank": "USBankMSP", **scope}, me
    refused = us.client.get("/v1/settlement-cycles", headers=_h(treasurer)).get_json()
    assert refused["detail"] == "this route needs an operator key", refused
