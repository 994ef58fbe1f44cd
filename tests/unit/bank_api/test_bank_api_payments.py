"""Payments through HTTP on the fake network: intra-bank, interbank, cross-currency, refusals."""

from __future__ import annotations

import time

from gateway.bank_api.workers import PaymentFollower, PaymentSweeper
from tests.unit.bank_api.conftest import Gateway, GatewayFactory
from tests.unit.bank_api.fake_ledger import FakeNetwork, stop_when


def _merchant(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


def _requests_served(gateway: Gateway) -> float:
    registry = gateway.services.metrics.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "bank_api_http_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def _conserved(network: FakeNetwork, *currencies: str) -> None:
    for currency in currencies:
        assert network.total_balances(currency) == network.total_supply(currency), currency


def test_account_shows_balances_as_decimal_strings(us: Gateway) -> None:
    account, key = us.open_account()
    us.issue(account, "12.34")
    us.issue(account, "0.66", ref="second")
    body = us.client.get(f"/v1/accounts/{account}", headers=_merchant(key)).get_json()
    assert body["balances"] == {"USD": "13.00"}
    assert body["status"] == "active"
    history = us.client.get(f"/v1/accounts/{account}/history?page_size=1", headers=_merchant(key)).get_json()
    assert len(history["entries"]) == 1 and history["entries"][0]["amount"] == "0.66"
    assert history["next_cursor"]
    rest = us.client.get(
        f"/v1/accounts/{account}/history?page_size=1&cursor={history['next_cursor']}", headers=_merchant(key)
    ).get_json()
    assert rest["entries"][0]["amount"] == "12.34" and rest["next_cursor"] is None


def test_issue_is_idempotent_on_the_deposit_reference(us: Gateway) -> None:
    account, _ = us.open_account()
    body = {"account_id": account, "currency": "USD", "amount": "10.00", "deposit_ref": "core-77"}
    first = us.client.post("/v1/issuances", json=body, headers=us.op())
    again = us.client.post("/v1/issuances", json=body, headers=us.op())
    assert (first.status_code, first.get_json()["issued"]) == (201, True)
    assert (again.status_code, again.get_json()["issued"]) == (200, False)
    assert us.ledger.network.balance("USBankMSP", account, "USD") == 1000
    supply = us.client.get("/v1/supply", headers=us.op()).get_json()
    assert supply == {"token_classes": [{"issuer": "USBankMSP", "currency": "USD", "supply": "10.00"}]}


def test_intra_bank_payment_is_final_at_once(us: Gateway) -> None:
    payer, payer_key = us.open_account("Payer")
    payee, payee_key = us.open_account("Payee")
    us.issue(payer, "20.00")
    response = us.client.post(
        "/v1/payments",
        json={
            "payee_bank": "USBankMSP",
            "payee_account": payee,
            "currency": "USD",
            "amount": "7.50",
            "remittance": "invoice 9",
        },
        headers=_merchant(payer_key, "t1"),
    )
    assert response.status_code == 201
    payment = response.get_json()
    assert payment["status"] == "completed" and payment["amount"] == "7.50"
    assert us.ledger.network.balance("USBankMSP", payee, "USD") == 750
    assert us.ledger.network.balance("USBankMSP", payer, "USD") == 1250
    seen_by_payee = us.client.get(f"/v1/payments/{payment['payment_id']}", headers=_merchant(payee_key))
    assert seen_by_payee.status_code == 200 and seen_by_payee.get_json()["remittance"] == "invoice 9"


def test_interbank_payment_completes_without_calling_the_payee_gateway(
    us: Gateway, make_gateway: GatewayFactory
) -> None:
    hk = make_gateway("HKBankMSP", follow_events=True)
    buyer, buyer_key = us.open_account("Buyer", "US")
    supplier, supplier_key = hk.open_account("Supplier", "HK")
    us.issue(buyer, "100.00")
    hk_requests_before = _requests_served(hk)
    response = us.client.post(
        "/v1/payments",
        json={
            "payee_bank": "HKBankMSP",
            "payee_account": supplier,
            "currency": "USD",
            "amount": "10.00",
            "payee_currency": "HKD",
        },
        headers=_merchant(buyer_key, "inv-1"),
    )
    assert response.status_code == 201, response.get_json()
    payment = response.get_json()
    assert payment["status"] == "initiated"
    assert (payment["payee_currency"], payment["payee_amount"], payment["rate"]) == ("HKD", "78.00", "7.8")
    assert payment["payee_account"] == supplier
    network = us.ledger.network
    assert stop_when(lambda: network.payments[payment["payment_id"]]["status"] == "completed")
    assert network.balance("HKBankMSP", supplier, "HKD") == 7800
    assert _requests_served(hk) == hk_requests_before  # completed by the HK follower, not over HTTP
    status = us.client.get(f"/v1/payments/{payment['payment_id']}", headers=_merchant(buyer_key)).get_json()
    assert [step["status"] for step in status["timeline"]] == ["initiated", "completed"]
    seen_by_supplier = hk.client.get(f"/v1/payments/{payment['payment_id']}", headers=_merchant(supplier_key))
    assert seen_by_supplier.get_json()["payee_amount"] == "78.00"
    _conserved(network, "USD", "HKD")


def test_payment_to_a_frozen_account_is_rejected_with_reason_and_refunded(us: Gateway, hk: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "30.00")
    frozen = hk.client.post(f"/v1/accounts/{supplier}/freeze", json={"reason": "sanctions review"}, headers=hk.op())
    assert frozen.get_json()["status"] == "frozen"
    payment = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "30.00"},
        headers=_merchant(buyer_key, "p"),
    ).get_json()
    network = us.ledger.network
    assert network.balance("USBankMSP", buyer, "USD") == 0
    # Drive both followers by hand, event by event, as their threads would.
    hk_follower = PaymentFollower(hk.services)
    us_follower = PaymentFollower(us.services)
    for follower in (hk_follower, us_follower, hk_follower, us_follower):
        for event in list(network.events):
            follower.handle_with_retries(event)
    record = network.payments[payment["payment_id"]]
    assert record["status"] == "refunded"
    assert record["reason"] == "account_frozen"
    assert network.balance("USBankMSP", buyer, "USD") == 3000
    shown = us.client.get(f"/v1/payments/{payment['payment_id']}", headers=_merchant(buyer_key)).get_json()
    assert shown["reason"] == "account_frozen"
    assert [s["status"] for s in shown["timeline"]] == ["initiated", "rejected", "refunded"]
    _conserved(network, "USD")


def test_payment_to_an_unknown_account_is_rejected(us: Gateway, hk: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    us.issue(buyer, "5.00")
    payment = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": "acc_ghost", "currency": "USD", "amount": "5.00"},
        headers=_merchant(buyer_key, "ghost"),
    ).get_json()
    sweeper = PaymentSweeper(hk.services)
    fresh = sweeper.sweep()
    assert (fresh["pending_incoming"], fresh["completions_queued"]) == (1, 0)  # fresh: left to the follower
    assert sweeper.tasks.run_due() == {}
    assert us.ledger.network.payments[payment["payment_id"]]["status"] == "initiated"
    # Still open well after the grace period: the sweeper queues its completion, which rejects it.
    assert sweeper.sweep(now=time.time() + 60)["completions_queued"] == 1
    assert sweeper.tasks.run_due() == {"done": 1}
    assert us.ledger.network.payments[payment["payment_id"]]["status"] == "rejected"
    assert us.ledger.network.payments[payment["payment_id"]]["reason"] == "unknown_account"
    payer_sweeper = PaymentSweeper(us.services)
    assert payer_sweeper.sweep()["refunds_queued"] == 1
    assert payer_sweeper.sweep()["refunds_queued"] == 0  # queued once, however often the sweeper passes
    assert payer_sweeper.tasks.run_due() == {"done": 1}
    assert us.ledger.network.balance("USBankMSP", buyer, "USD") == 500


def test_stale_initiated_payment_is_refunded_after_the_timeout(network: FakeNetwork, us: Gateway) -> None:
    now = [1_000_000.0]
    network.clock = lambda: now[0]
    buyer, buyer_key = us.open_account("Buyer")
    us.issue(buyer, "5.00")
    payment = us.client.post(
        "/v1/payments",
        json={"payee_bank": "SGBankMSP", "payee_account": "acc_x", "currency": "USD", "amount": "5.00"},
        headers=_merchant(buyer_key, "slow"),
    ).get_json()
    sweeper = PaymentSweeper(us.services)
    assert sweeper.sweep(now=now[0] + 10)["refunds_queued"] == 0
    assert network.payments[payment["payment_id"]]["status"] == "initiated"
    now[0] += 301
    assert sweeper.sweep(now=now[0])["refunds_queued"] == 1
    sweeper.tasks.run_due()
    assert network.payments[payment["payment_id"]]["status"] == "refunded"
    assert network.balance("USBankMSP", buyer, "USD") == 500


def test_settlement_cycle_nets_and_settles(us: Gateway, hk: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    supplier, supplier_key = hk.open_account("Supplier", "HK")
    us.issue(buyer, "100.00")
    hk.issue(supplier, "40.00", currency="USD")
    us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "60.00"},
        headers=_merchant(buyer_key, "a"),
    )
    hk.client.post(
        "/v1/payments",
        json={"payee_bank": "USBankMSP", "payee_account": buyer, "currency": "USD", "amount": "15.00"},
        headers=_merchant(supplier_key, "b"),
    )
    for sweeper in (PaymentSweeper(hk.services), PaymentSweeper(us.services)):
        sweeper.sweep(now=time.time() + 60)
        sweeper.tasks.run_due()
    positions = us.client.get("/v1/positions", headers=us.op()).get_json()
    assert positions["positions"] == {"HKBankMSP": {"USD": "45.00"}, "USBankMSP": {"USD": "-45.00"}}
    opened = us.client.post("/v1/settlement-cycles", json={"cycle_id": "c-1"}, headers=us.op())
    assert opened.status_code == 201
    # Opening it again (a retry after a lost answer) gives the same cycle, not a second one.
    reopened = us.client.post("/v1/settlement-cycles", json={"cycle_id": "c-1"}, headers=us.op())
    assert reopened.status_code == 201 and reopened.get_json()["cycle_id"] == "c-1"
    taken = hk.client.post("/v1/settlement-cycles", json={"cycle_id": "c-1"}, headers=hk.op())
    assert (taken.status_code, taken.get_json()["code"]) == (409, "duplicate_reference")
    assert opened.get_json()["positions"] == positions["positions"]
    assert opened.get_json()["payments"] == 2
    first = us.client.post("/v1/settlement-cycles/c-1/confirmation", json={"external_ref": "fed-1"}, headers=us.op())
    assert first.get_json()["status"] == "open"
    again = us.client.post("/v1/settlement-cycles/c-1/confirmation", json={"external_ref": "fed-1"}, headers=us.op())
    assert again.status_code == 200  # the same confirmation again changes nothing
    other = us.client.post("/v1/settlement-cycles/c-1/confirmation", json={"external_ref": "fed-2"}, headers=us.op())
    assert (other.status_code, other.get_json()["code"]) == (409, "already_confirmed")
    done = hk.client.post("/v1/settlement-cycles/c-1/confirmation", json={"external_ref": "hk-1"}, headers=hk.op())
    assert done.get_json()["status"] == "settled"
    assert done.get_json()["confirmations"]["USBankMSP"]["external_ref"] == "fed-1"
    assert all(leg["confirmed"] for leg in done.get_json()["confirmations"].values())
    assert us.client.get("/v1/positions", headers=us.op()).get_json()["positions"] == {}
    listed = us.client.get("/v1/settlement-cycles", headers=us.op()).get_json()["cycles"]
    assert [c["cycle_id"] for c in listed] == ["c-1"]


def test_operator_lists_payments_by_status(us: Gateway, hk: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    for n in range(3):
        us.client.post(
            "/v1/payments",
            json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "1.00"},
            headers=_merchant(buyer_key, f"n{n}"),
        )
    page = us.client.get("/v1/payments?status=initiated&page_size=2", headers=us.op()).get_json()
    assert len(page["payments"]) == 2 and page["next_cursor"]
    rest = us.client.get(
        f"/v1/payments?status=initiated&page_size=2&cursor={page['next_cursor']}", headers=us.op()
    ).get_json()
    assert len(rest["payments"]) == 1 and rest["next_cursor"] is None
    assert us.client.get("/v1/payments?status=completed", headers=us.op()).get_json()["payments"] == []


def test_limits_are_set_and_enforced(us: Gateway, hk: Gateway) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "100.00")
    limited = us.client.put(
        f"/v1/accounts/{buyer}/limits/USD",
        json={"per_transaction": "10.00", "daily": "50.00"},
        headers=us.op(),
    )
    assert limited.get_json()["limits"] == {"USD": {"per_transaction": "10.00", "daily": "50.00"}}
    refused = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "10.01"},
        headers=_merchant(buyer_key, "big"),
    )
    assert (refused.status_code, refused.get_json()["code"]) == (409, "limit_exceeded")


def test_operator_sees_other_banks_payments_without_their_details(
    us: Gateway, hk: Gateway, make_gateway: GatewayFactory
) -> None:
    sg = make_gateway("SGBankMSP")
    buyer, buyer_key = us.open_account("Buyer")
    supplier, _ = hk.open_account("Supplier", "HK")
    us.issue(buyer, "10.00")
    payment = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "1.00"},
        headers=_merchant(buyer_key, "third-party"),
    ).get_json()
    seen = sg.client.get(f"/v1/payments/{payment['payment_id']}", headers=sg.op())
    assert seen.status_code == 200
    assert seen.get_json()["amount"] == "1.00"
    assert "payer_account" not in seen.get_json() and "payee_account" not in seen.get_json()
