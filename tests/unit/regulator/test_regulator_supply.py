"""The regulator's view of supply over time, from the changes each transaction reports in its event,
the rule that notices a supply moving without a report, and alerts pushed to signed webhooks."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from chaincode.deposit_token.ledger import Ledger as ContractLedger
from chaincode.shim.contract import ContractRouter
from gateway.bank_api import supply_watch
from gateway.bank_api.alerts import RegulatorMonitor
from gateway.bank_api.ledger import LedgerEvent
from gateway.bank_api.storage.models import SupplyMovement, WebhookDelivery
from gateway.bank_api.webhooks import verify
from tests.integration.rogue_deposit_token import RogueDepositTokenContract
from tests.unit.contract.conftest import new_ledger
from tests.unit.regulator.conftest import HK, US, Gateway, GatewayFactory, Ledger, handle_new

ROGUE = ContractRouter([RogueDepositTokenContract()])


def _reported_by_events(contract: Ledger) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for event in contract.channel.events:
        report = json.loads(event.payload).get("supply") if event.payload else None
        for change in (report or {}).get("changes", []):
            totals[(change["issuer"], change["currency"])] += change["delta"]
    return {token_class: total for token_class, total in totals.items() if total}


def _pay(contract: Ledger, key: str, amount: int, payer_bank: str = US, payer: str = "alice",
         payee_bank: str = HK, payee: str = "shop", currency: str = "USD") -> str:  # fmt: skip
    request = {
        "idempotency_key": key, "payer_account": payer, "payee_bank": payee_bank, "payee_account": payee,
        "currency": currency, "amount": amount, "pending_credits": contract.pending(payer_bank, payer),
    }  # fmt: skip
    payment_id: str = contract.submit(payer_bank, "InitiatePayment", request)["payment_id"]
    return payment_id


@pytest.fixture
def customers(contract: Ledger) -> Ledger:
    contract.open(US, "alice", "US")
    contract.open(HK, "shop", "HK")
    contract.issue(US, "alice", 1_000_000)
    return contract


def _monitor(regulator: Gateway, contract: Ledger) -> RegulatorMonitor:
    return RegulatorMonitor(regulator.services, clock=lambda: contract.channel.now, retry_seconds=0.05)


def _put_rule(regulator: Gateway, rule: str, body: dict[str, Any]) -> None:
    response = regulator.client.put(f"/v1/alert-rules/{rule}", json=body, headers=regulator.headers())
    assert response.status_code == 200, response.get_json()


# -- the contract's reports ------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["issue", "redeem", "pay", "complete", "refund", "lock", "release",
                                           "release-abroad", "expire"]),
                          st.integers(min_value=1, max_value=50_000)), max_size=12))  # fmt: skip
def test_the_reports_in_events_add_up_to_every_supply(steps: list[tuple[str, int]]) -> None:
    """Whatever happens, the supply changes reported in events sum to the supply on the ledger."""
    contract = new_ledger()
    contract.open(US, "alice", "US")
    contract.open(US, "seller", "US")
    contract.open(HK, "shop", "HK")
    contract.issue(US, "alice", 100_000, ref="dep-0")
    initiated: list[str] = []
    escrows: list[str] = []
    for number, (step, amount) in enumerate(steps):
        try:
            if step == "lock":
                expires = (contract.channel.now + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                locked = contract.submit(US, "LockEscrow", {
                    "idempotency_key": f"e-{number}", "payer_account": "alice", "payee_bank": HK if amount % 2 else US,
                    "payee_account": "shop" if amount % 2 else "seller", "currency": "USD", "amount": amount,
                    "release_by": "buyer", "expires_at": expires, "on_expiry": "release" if amount % 3 else "refund",
                    "pending_credits": contract.pending(US, "alice")})  # fmt: skip
                escrows.append(locked["escrow_id"])
            elif step in ("release", "release-abroad") and escrows:
                contract.submit(US, "ReleaseEscrow", {"escrow_id": escrows[-1], "release_id": f"r-{number}",
                                                      "amount": amount % 5_000 + 1, "by": "buyer"})  # fmt: skip
            elif step == "expire" and escrows:
                contract.channel.advance(120)
                contract.submit(US, "ExpireEscrow", {"escrow_id": escrows.pop(0)})
            elif step == "issue":
                contract.issue(US, "alice", amount, ref=f"dep-{number + 1}")
            elif step == "redeem":
                contract.submit(US, "Redeem", {"account_id": "alice", "currency": "USD", "amount": amount,
                                               "withdrawal_ref": f"wd-{number}",
                                               "pending_credits": contract.pending(US, "alice")})  # fmt: skip
            elif step == "pay":
                initiated.append(_pay(contract, f"p-{number}", amount))
            elif step == "complete" and initiated:
                contract.submit(HK, "CompletePayment", {"payment_id": initiated.pop(0)})
            elif step == "refund" and initiated:
                payment_id = initiated.pop(0)
                contract.submit(HK, "RejectPayment", {"payment_id": payment_id, "reason": "unknown_account"})
                contract.submit(US, "RefundPayment", {"payment_id": payment_id})
        except AssertionError:
            continue  # refused (no funds, say): changes nothing, reports nothing
    on_ledger = {token_class: supply for token_class, supply in contract.supply().items() if supply}
    assert _reported_by_events(contract) == on_ledger


def test_a_supply_change_after_the_event_is_refused_as_unreported() -> None:
    class Stub:
        def get_tx_id(self) -> str:
            return "tx"

        def get_tx_timestamp(self) -> datetime:
            return datetime(2025, 1, 6, tzinfo=UTC)

        def set_event(self, name: str, payload: bytes) -> None:
            pass

    ledger = ContractLedger(Stub())  # type: ignore[arg-type]
    ledger.emit("Issued", {})
    with pytest.raises(RuntimeError, match="would go unreported"):
        ledger.report_supply_change(US, "USD", 1)


# -- supply over time --------------------------------------------------------------------------


def test_supply_history_per_bucket_from_the_reports(regulator: Gateway, customers: Ledger) -> None:
    monitor = _monitor(regulator, customers)
    # 2025-01-06T09:00:00Z: 10,000.00 USD issued to alice
    customers.channel.advance(30)
    first = _pay(customers, "h1", 2_500)  # 09:00:30, burns 25.00 USD
    customers.channel.advance(3600)
    customers.issue(US, "alice", 10_000, ref="dep-later")  # 10:00:30
    customers.submit(HK, "CompletePayment", {"payment_id": first})  # 10:00:30, HKBank's USD minted
    handle_new(monitor, regulator)
    handle_new(monitor, regulator)  # handled twice (a restart): stored once
    with regulator.services.db.session(write=False) as session:
        assert len(session.scalars(select(SupplyMovement)).all()) == 4

    query = "/v1/supply/history?issuer=USBankMSP&currency=USD&from=2025-01-06T08:00:00Z&to=2025-01-06T12:00:00Z"
    body = regulator.ok(query)
    assert (body["opening_supply"], body["interval"]) == ("0.00", "hour")
    assert body["points"] == [
        {"at": "2025-01-06T09:00:00Z", "supply": "9975.00", "increase": "10000.00", "decrease": "25.00",
         "changes": 2},
        {"at": "2025-01-06T10:00:00Z", "supply": "10075.00", "increase": "100.00", "decrease": "0.00",
         "changes": 1},
    ]  # fmt: skip
    later = regulator.ok(query.replace("from=2025-01-06T08", "from=2025-01-06T10") + "&interval=minute")
    assert later["opening_supply"] == "9975.00" and [p["changes"] for p in later["points"]] == [1]
    hk = regulator.ok(
        "/v1/supply/history?issuer=HKBankMSP&currency=USD&from=2025-01-06T00:00:00Z&to=2025-01-07T00:00:00Z&interval=day"
    )
    assert [(p["at"], p["supply"]) for p in hk["points"]] == [("2025-01-06T00:00:00Z", "25.00")]
    csv = regulator.get(query + "&format=csv").get_data(as_text=True).splitlines()
    assert csv[0] == "at,supply,increase,decrease,changes" and csv[1].startswith("2025-01-06T09:00:00Z,9975.00,")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("currency=USD", "issuer is required"),
        ("issuer=USBankMSP", "currency is required"),
        ("issuer=USBankMSP&currency=XXX", "currency"),
        ("issuer=US%20BankMSP&currency=USD", "issuer"),
        ("issuer=USBankMSP&currency=USD&interval=week", "interval"),
        ("issuer=USBankMSP&currency=USD&from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "from is after to"),
        ("issuer=USBankMSP&currency=USD&from=2000-01-01T00:00:00Z&to=2025-01-01T00:00:00Z&interval=minute",
         "more than"),
        ("issuer=USBankMSP&currency=USD&from=0001-01-01T00:00:00%2B01:00", "from"),
        ("issuer=USBankMSP&currency=USD&to=yesterday", "to"),
    ],
)  # fmt: skip
def test_supply_history_refuses_what_it_cannot_mean(regulator: Gateway, query: str, named: str) -> None:
    response = regulator.get(f"/v1/supply/history?{query}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert named in response.get_json()["detail"]


def test_malformed_reports_are_ignored() -> None:
    def event(report: Any) -> LedgerEvent:
        return LedgerEvent(1, "tx", "Issued", {"supply": report})

    good = {"at": "2025-01-06T09:00:00Z", "changes": [{"issuer": US, "currency": "USD", "delta": -5}]}
    assert supply_watch.reported(event(good)) == [
        supply_watch.Movement(US, "USD", -5, datetime(2025, 1, 6, 9, tzinfo=UTC))
    ]
    for bad in (None, [], "x", {**good, "at": "noon"}, {**good, "changes": "all"},
                {**good, "changes": [{"issuer": US, "currency": "usd", "delta": 1}]},
                {**good, "changes": [{"issuer": US, "currency": "USD", "delta": True}]},
                {**good, "changes": [{"issuer": US, "currency": "USD", "delta": 1.5}]},
                {**good, "changes": [{"issuer": US, "currency": "USD", "delta": 2**70}]},
                {**good, "changes": [{"issuer": "", "currency": "USD", "delta": 1}]},
                {**good, "changes": [{"issuer": US, "currency": "USD", "delta": 1}] * 17}):  # fmt: skip
        assert supply_watch.reported(event(bad)) == [], bad


# -- the supply_drift rule -----------------------------------------------------------------------


def test_a_supply_that_moves_without_a_report_is_raised_once_it_holds(regulator: Gateway, customers: Ledger) -> None:
    monitor = _monitor(regulator, customers)
    _put_rule(regulator, "supply_drift", {"enabled": True, "confirm_seconds": 20})
    _pay(customers, "d1", 2_500)
    handle_new(monitor, regulator)
    assert monitor.check_supply() == []  # every change reported: quiet
    customers.channel.advance(60)
    assert monitor.check_supply() == []

    # USBank, running altered chaincode, mints 7.00 USD of its own without an Issued event.
    mint = customers.channel.simulate(US, "RogueMint", [US, "USD", "700"], router=ROGUE)
    assert mint.ok and customers.channel.commit([mint]) == ["VALID"]
    handle_new(monitor, regulator)
    assert monitor.check_supply() == []  # first seen: it must hold for 20 s
    customers.channel.advance(10)
    assert monitor.check_supply() == []
    customers.channel.advance(10)
    [alert_id] = monitor.check_supply()
    alert = regulator.ok(f"/v1/alerts/{alert_id}")
    assert alert["rule"] == "supply_drift"
    assert alert["subject"] == (
        "supply of USBankMSP's USD is 9982.00 on the ledger, but its transactions reported 9975.00 (difference 7.00)"
    )
    shown = ("issuer", "currency", "ledger_supply", "reported_supply", "difference")
    assert {k: alert["evidence"][k] for k in shown} == {
        "issuer": US, "currency": "USD", "ledger_supply": "9982.00", "reported_supply": "9975.00", "difference": "7.00",
    }  # fmt: skip
    assert len(alert["evidence"]["last_reported_transactions"]) == 2
    customers.channel.advance(60)
    assert monitor.check_supply() == []  # the same difference is raised once
    restarted = _monitor(regulator, customers)
    customers.channel.advance(30)
    restarted.check_supply()
    customers.channel.advance(30)
    assert restarted.check_supply() == []  # nor again after a restart

    # It goes away when the books are put right (the minted amount burned again, unreported too).
    burn = customers.channel.simulate(US, "RogueMint", [US, "USD", "-700"], router=ROGUE)
    assert burn.ok and customers.channel.commit([burn]) == ["VALID"]
    customers.channel.advance(60)
    assert monitor.check_supply() == []
    assert [a["rule"] for a in regulator.ok("/v1/alerts")["alerts"]] == ["supply_drift"]


def test_a_difference_that_goes_away_is_never_raised(regulator: Gateway, customers: Ledger) -> None:
    """A report still on its way shows as a difference for a moment: it is not an alert."""
    monitor = _monitor(regulator, customers)
    _put_rule(regulator, "supply_drift", {"enabled": True, "confirm_seconds": 20})
    handle_new(monitor, regulator)
    _pay(customers, "late", 1_000)  # committed, its event not handled yet
    assert monitor.check_supply() == []
    customers.channel.advance(15)
    handle_new(monitor, regulator)
    customers.channel.advance(15)
    assert monitor.check_supply() == []
    customers.channel.advance(30)
    assert monitor.check_supply() == []
    _put_rule(regulator, "supply_drift", {"enabled": False, "confirm_seconds": 20})
    mint = customers.channel.simulate(US, "RogueMint", [US, "USD", "5"], router=ROGUE)
    assert mint.ok and customers.channel.commit([mint]) == ["VALID"]
    for _ in range(3):
        customers.channel.advance(30)
        assert monitor.check_supply() == []  # disabled
    assert regulator.ok("/v1/alerts")["alerts"] == []


# -- alerts pushed to webhooks ----------------------------------------------------------------------


def test_each_alert_is_queued_once_for_each_alert_webhook_signed(
    make_gateway: GatewayFactory, customers: Ledger
) -> None:
    regulator = make_gateway("RegulatorMSP", role="regulator", webhook_allowed_targets=["127.0.0.1"])
    response = regulator.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/alerts"},
                                     headers=regulator.headers())  # fmt: skip
    assert response.status_code == 201, response.get_json()
    webhook = response.get_json()
    assert webhook["events"] == ["alert.raised"] and webhook["secret"].startswith("whsec_")
    monitor = _monitor(regulator, customers)
    _put_rule(regulator, "large_payment", {"enabled": True, "thresholds": {"USD": "100.00"}})
    _pay(customers, "big", 20_000)
    [alert_id] = handle_new(monitor, regulator)
    with regulator.services.db.session(write=False) as session:
        [delivery] = session.scalars(select(WebhookDelivery)).all()
        payload = json.loads(delivery.payload)
    assert (delivery.event_type, delivery.state, delivery.event_id) == (
        "alert.raised",
        "pending",
        f"alert.raised:{alert_id}",
    )
    assert payload["type"] == "alert.raised" and payload["data"]["alert_id"] == alert_id
    assert payload["data"]["rule"] == "large_payment" and payload["data"]["evidence"]["amount"] == "200.00"
    # Handling the same events again raises nothing and queues nothing.
    with regulator.services.db.session() as session:
        for row in session.scalars(select(SupplyMovement)):
            session.delete(row)
    monitor.save_checkpoint(LedgerEvent(0, "none", "", {}))
    handle_new(monitor, regulator)
    with regulator.services.db.session(write=False) as session:
        assert len(session.scalars(select(WebhookDelivery)).all()) == 1
    deliveries = regulator.ok(f"/v1/webhooks/{webhook['id']}/deliveries")["deliveries"]
    assert [d["event_id"] for d in deliveries] == [f"alert.raised:{alert_id}"]
    secret = webhook["secret"]
    body = delivery.payload.encode()
    from gateway.bank_api.webhooks import sign

    assert verify(secret, sign(secret, 1_700_000_000, body), body, now=1_700_000_000)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest", "http://2130706433/", "http://[::1]/", "http://127.0.0.1:99999/", "ftp://x/"],
)
def test_alert_webhooks_refuse_addresses_the_gateway_must_not_call(regulator: Gateway, url: str) -> None:
    response = regulator.client.post("/v1/webhooks", json={"url": url}, headers=regulator.headers())
    assert response.status_code == 400, response.get_json()
    assert regulator.ok("/v1/webhooks") == {"webhooks": []}


def test_alert_webhooks_are_the_regulators_own(regulator: Gateway, make_gateway: GatewayFactory) -> None:
    bank = make_gateway(US)
    refused = regulator.client.post("/v1/webhooks", json={"url": "https://supervisor.example/a"},
                                    headers=regulator.headers(bank.operator_key))  # fmt: skip
    assert refused.status_code == 401
    made = regulator.client.post("/v1/webhooks", json={"url": "https://supervisor.example/a",
                                                        "events": ["payment.completed"]},
                                 headers=regulator.headers())  # fmt: skip
    assert made.status_code == 400 and "events" in made.get_json()["detail"]
    created = regulator.client.post("/v1/webhooks", json={"url": "https://supervisor.example/a"},
                                    headers=regulator.headers()).get_json()  # fmt: skip
    assert regulator.client.delete(f"/v1/webhooks/{created['id']}", headers=regulator.headers()).status_code == 204
    assert regulator.client.delete(f"/v1/webhooks/{created['id']}", headers=regulator.headers()).status_code == 404
