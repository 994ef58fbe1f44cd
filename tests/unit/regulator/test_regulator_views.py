"""The regulator's views, on the real contract in an in-memory channel: each list against known payments,
its filters, its CSV, and no customer data anywhere in what the regulator sees."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.unit.regulator.conftest import HK, REG, SG, US, Gateway, GatewayFactory, Ledger

CUSTOMER_DATA = ("alice", "Alice Example", "shop", "Kowloon Shop", "sg-shop", "KYC-", "INV-SECRET-42")


@dataclass
class Known:
    completed: str  # 09:00 US->HK 25.00 USD, in cycle c-1
    initiated: str  # 09:01 US->SG 50.00 USD, left initiated
    refunded: str  # 09:02 SG->HK 7.00 USD, rejected then refunded
    big: str  # 09:03 US->HK 100.00 USD, in cycle c-1
    after_cycle: str  # 09:05 US->HK 3.00 USD, completed after the cycle


def _pay(contract: Ledger, bank: str, payer: str, payee_bank: str, payee: str, key: str, amount: int) -> str:
    request = {
        "idempotency_key": key, "payer_account": payer, "payee_bank": payee_bank, "payee_account": payee,
        "currency": "USD", "amount": amount, "remittance": "INV-SECRET-42",
        "pending_credits": contract.pending(bank, payer),
    }  # fmt: skip
    payment_id: str = contract.submit(bank, "InitiatePayment", request)["payment_id"]
    return payment_id


@pytest.fixture
def known(contract: Ledger) -> Known:
    contract.open(US, "alice", "US", holder="Alice Example")
    contract.open(HK, "shop", "HK", holder="Kowloon Shop")
    contract.open(SG, "sg-shop", "SG", holder="Kowloon Shop")
    contract.issue(US, "alice", 100_000)
    contract.issue(SG, "sg-shop", 100_000)
    completed = _pay(contract, US, "alice", HK, "shop", "k1", 2500)
    contract.submit(HK, "CompletePayment", {"payment_id": completed})
    contract.channel.advance(60)
    initiated = _pay(contract, US, "alice", SG, "sg-shop", "k2", 5000)
    contract.channel.advance(60)
    refunded = _pay(contract, SG, "sg-shop", HK, "shop", "k3", 700)
    contract.submit(HK, "RejectPayment", {"payment_id": refunded, "reason": "account_frozen"})
    contract.submit(SG, "RefundPayment", {"payment_id": refunded})
    contract.channel.advance(60)
    big = _pay(contract, US, "alice", HK, "shop", "k4", 10_000)
    contract.submit(HK, "CompletePayment", {"payment_id": big})
    contract.channel.advance(60)
    contract.submit(HK, "OpenSettlementCycle", args=["c-1"])
    contract.submit(US, "ConfirmSettlement", args=["c-1", "RTGS-1"])
    contract.channel.advance(60)
    after_cycle = _pay(contract, US, "alice", HK, "shop", "k5", 300)
    contract.submit(HK, "CompletePayment", {"payment_id": after_cycle})
    return Known(completed, initiated, refunded, big, after_cycle)


def _ids(body: dict[str, Any]) -> list[str]:
    return [p["payment_id"] for p in body["payments"]]


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_supply_per_token_class_now(regulator: Gateway, known: Known, contract: Ledger) -> None:
    body = regulator.ok("/v1/supply")
    supply = {(c["issuer"], c["currency"]): c["supply"] for c in body["token_classes"]}
    # USBank burned what it paid out (25 + 50 + 100 + 3); HKBank issued what it received (25 + 100 + 3).
    assert supply[(US, "USD")] == "822.00"
    assert supply[(HK, "USD")] == "128.00"
    assert supply[(SG, "USD")] == "1000.00"  # the refund restored SGBank's 7.00
    assert supply[(HK, "CNH")] == "0.00"
    rows = _csv(regulator.get("/v1/supply?format=csv"))
    assert {(r["issuer"], r["currency"]): r["supply"] for r in rows} == supply


def test_payments_newest_first_each_with_its_timeline(regulator: Gateway, known: Known) -> None:
    body = regulator.ok("/v1/payments")
    assert _ids(body) == [known.after_cycle, known.big, known.refunded, known.initiated, known.completed]
    assert body["next_cursor"] is None
    by_id = {p["payment_id"]: p for p in body["payments"]}
    refunded = by_id[known.refunded]
    assert [step["status"] for step in refunded["timeline"]] == ["initiated", "rejected", "refunded"]
    assert (refunded["payer_bank"], refunded["payee_bank"], refunded["amount"], refunded["reason"]) == (
        SG, HK, "7.00", "account_frozen",
    )  # fmt: skip
    assert refunded["timeline"][0]["at"] == "2025-01-06T09:02:00.000000Z"
    assert by_id[known.big]["cycle_id"] == "c-1" and by_id[known.after_cycle]["cycle_id"] is None
    assert by_id[known.big]["corridor_version"] == 1
    assert len(by_id[known.big]["details_hash"]) == 64
    single = regulator.ok(f"/v1/payments/{known.refunded}")
    assert single == refunded


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("payer_bank=USBankMSP", ["after_cycle", "big", "initiated", "completed"]),
        ("payee_bank=HKBankMSP", ["after_cycle", "big", "refunded", "completed"]),
        ("bank=SGBankMSP", ["refunded", "initiated"]),
        ("payer_bank=USBankMSP&payee_bank=SGBankMSP", ["initiated"]),
        ("status=completed", ["after_cycle", "big", "completed"]),
        ("status=initiated", ["initiated"]),
        ("status=refunded&bank=HKBankMSP", ["refunded"]),
        ("currency=USD&min_amount=25.00&max_amount=50", ["initiated", "completed"]),
        ("currency=USD&min_amount=50.01", ["big"]),
        ("currency=HKD", []),
        ("from=2025-01-06T09:01:00Z&to=2025-01-06T09:03:00Z", ["big", "refunded", "initiated"]),
        ("from=2025-01-06T17:01:00%2B08:00", ["after_cycle", "big", "refunded", "initiated"]),
        ("to=2025-01-06T09:00:59.999999Z", ["completed"]),
    ],
)  # fmt: skip
def test_payment_filters(regulator: Gateway, known: Known, query: str, expected: list[str]) -> None:
    names = {getattr(known, name): name for name in ("completed", "initiated", "refunded", "big", "after_cycle")}
    assert [names[payment_id] for payment_id in _ids(regulator.ok(f"/v1/payments?{query}"))] == expected


def test_pages_walk_every_match_once(regulator: Gateway, known: Known) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        body = regulator.ok(f"/v1/payments?page_size=2&currency=USD&min_amount=3{cursor}")
        seen += _ids(body)
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert seen == [known.after_cycle, known.big, known.refunded, known.initiated, known.completed]


def test_payments_export_every_match_as_csv(regulator: Gateway, known: Known) -> None:
    # Accept: text/csv asks for it too; page_size does not cut an export short.
    rows = _csv(regulator.get("/v1/payments?payee_bank=HKBankMSP&page_size=1", headers={"Accept": "text/csv"}))
    assert [row["payment_id"] for row in rows] == [known.after_cycle, known.big, known.refunded, known.completed]
    refunded = next(row for row in rows if row["payment_id"] == known.refunded)
    assert (refunded["status"], refunded["amount"], refunded["reason"]) == ("refunded", "7.00", "account_frozen")
    assert refunded["initiated_at"] == "2025-01-06T09:02:00.000000Z"
    assert refunded["refunded_at"] == "2025-01-06T09:02:00.000000Z" and refunded["completed_at"] == ""
    big = next(row for row in rows if row["payment_id"] == known.big)
    assert (big["cycle_id"], big["corridor_version"]) == ("c-1", "1")


def test_an_export_past_the_limit_is_refused_with_a_hint(
    regulator: Gateway, known: Known, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.bank_api import oversight

    monkeypatch.setattr(oversight, "MAX_EXPORT_ROWS", 4)
    assert regulator.get("/v1/payments?format=csv&bank=SGBankMSP").status_code == 200
    response = regulator.get("/v1/payments?format=csv")
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["code"] == "export_too_large" and "narrow the export with from and to" in problem["detail"]


def test_net_positions_cover_completed_payments_no_cycle_took(regulator: Gateway, known: Known) -> None:
    assert regulator.ok("/v1/positions") == {
        "payments": 1,
        "positions": {HK: {"USD": "3.00"}, US: {"USD": "-3.00"}},
    }
    rows = _csv(regulator.get("/v1/positions?format=csv"))
    assert rows == [
        {"bank": HK, "currency": "USD", "position": "3.00"},
        {"bank": US, "currency": "USD", "position": "-3.00"},
    ]


def test_settlement_cycles_show_who_has_not_confirmed(regulator: Gateway, known: Known, contract: Ledger) -> None:
    cycles = regulator.ok("/v1/settlement-cycles")["cycles"]
    assert [(c["cycle_id"], c["status"], c["pending_banks"]) for c in cycles] == [("c-1", "open", [HK])]
    assert cycles[0]["positions"] == {HK: {"USD": "125.00"}, US: {"USD": "-125.00"}}
    assert cycles[0]["confirmations"][US]["external_ref"] == "RTGS-1"
    assert [c["cycle_id"] for c in regulator.ok(f"/v1/settlement-cycles?pending_bank={HK}")["cycles"]] == ["c-1"]
    assert regulator.ok(f"/v1/settlement-cycles?pending_bank={US}")["cycles"] == []
    rows = _csv(regulator.get("/v1/settlement-cycles?format=csv"))
    assert [(r["cycle_id"], r["status"], r["pending_banks"], r["payments"]) for r in rows] == [("c-1", "open", HK, "2")]
    contract.submit(HK, "ConfirmSettlement", args=["c-1", "RTGS-2"])
    assert regulator.ok("/v1/settlement-cycles?status=open")["cycles"] == []
    settled = regulator.ok("/v1/settlement-cycles/c-1")
    assert (settled["status"], settled["pending_banks"]) == ("settled", [])
    assert regulator.get("/v1/settlement-cycles/c-404").status_code == 404


def test_the_corridor_policy_and_its_history(regulator: Gateway, contract: Ledger) -> None:
    first = regulator.ok("/v1/corridor-policy")
    assert (first["version"], first["rules"], first["caps"]) == (
        1,
        [{"currency": "CNH", "cross_border_only": True, "allowed": None}],
        [],
    )
    contract.channel.advance(30)
    policy = {
        "rules": [{"currency": "USD", "allowed": [["US", "HK"]]}],
        "caps": [{"currency": "USD", "from": "US", "to": "HK", "per_payment": 100_000, "daily": None}],
        "note": "circular 7",
    }
    contract.submit(REG, "SetCorridorPolicy", args=[json.dumps(policy)])
    history = regulator.ok("/v1/corridor-policy/history")["versions"]
    assert [(v["version"], v["note"], v["changed_at"]) for v in history] == [
        (2, "circular 7", "2025-01-06T09:00:30.000000Z"),
        (1, None, "2025-01-06T09:00:00.000000Z"),
    ]
    cap = {"currency": "USD", "from": "US", "to": "HK", "per_payment": "1000.00", "daily": None}
    assert history[0]["caps"] == [cap]
    assert history[0] == regulator.ok("/v1/corridor-policy")
    rows = _csv(regulator.get("/v1/corridor-policy/history?format=csv"))
    assert [(r["version"], r["kind"], r["currency"], r["allowed_pairs"], r["per_payment"]) for r in rows] == [
        ("2", "rule", "USD", "HK-US", ""),
        ("2", "cap", "USD", "", "1000.00"),
        ("1", "rule", "CNH", "", ""),
    ]


def test_the_regulator_never_sees_customer_data(regulator: Gateway, known: Known) -> None:
    paths = [
        "/v1/payments", "/v1/payments?format=csv", f"/v1/payments/{known.big}", "/v1/positions",
        "/v1/settlement-cycles", "/v1/supply", "/v1/reference-data", "/v1/corridor-policy/history",
    ]  # fmt: skip
    for path in paths:
        text = regulator.get(path).get_data(as_text=True)
        for secret in CUSTOMER_DATA:
            assert secret not in text, (path, secret)
    # The port itself never asks for details, and the contract would refuse the regulator if it did.
    record = regulator.ledger.get_payment(known.big)
    assert "details" not in record


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("min_amount=5", "min_amount needs currency"),
        ("currency=USD&min_amount=9&max_amount=5", "min_amount is above max_amount"),
        ("currency=USD&min_amount=1.005", "min_amount has more than 2 decimal places"),
        ("currency=usd", "currency: currency must be a three-letter ISO 4217 code"),
        ("currency=XAU", "currency: currency XAU is not used on this network"),
        ("from=yesterday", "from must be an RFC 3339 time with its zone"),
        ("from=2025-01-06T09:00:00", "from must be an RFC 3339 time with its zone"),
        ("from=2025-01-06T09:00:00+08:00", "a '+' offset is sent as %2B"),
        ("from=2025-13-06T09:00:00Z", "from must be an RFC 3339 time"),
        ("from=2025-01-07T00:00:00Z&to=2025-01-06T00:00:00Z", "from is after to"),
        ("status=lost", "status must be one of initiated, completed, rejected, refunded"),
        ("payer_bank=a%2Fb", "payer_bank is malformed"),
        ("cursor=xyz", "cursor is malformed"),
        ("page_size=0", "page_size must be a whole number from 1 to 100"),
        ("format=xml", "format must be one of json, csv"),
    ],
)
def test_bad_filters_are_refused_by_name(regulator: Gateway, query: str, detail: str) -> None:
    response = regulator.get(f"/v1/payments?{query}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert detail in response.get_json()["detail"]


def test_bad_paths_are_refused_by_name(regulator: Gateway, known: Known) -> None:
    response = regulator.get("/v1/payments/not-an-id")
    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_request")
    assert "64 lowercase hex digits" in response.get_json()["detail"]
    response = regulator.get("/v1/payments/" + "0" * 64)
    assert (response.status_code, response.get_json()["code"]) == (404, "payment_not_found")
    response = regulator.get("/v1/settlement-cycles/bad%20id")
    assert response.status_code == 400


def test_reference_data_shows_each_banks_status(regulator: Gateway, contract: Ledger) -> None:
    contract.submit(REG, "SuspendBank", args=[SG, "AML review"])
    regulator.services._reference = None  # the gateway caches reference data for a minute
    banks = {bank["msp_id"]: bank for bank in regulator.ok("/v1/reference-data")["banks"]}
    assert (banks[SG]["status"], banks[SG]["status_reason"]) == ("suspended", "AML review")
    assert banks[US]["status"] == "active"


def test_keys_do_not_cross_between_the_regulator_and_the_banks(
    regulator: Gateway, make_gateway: GatewayFactory, known: Known
) -> None:
    bank = make_gateway(US)
    assert regulator.get("/v1/payments").status_code == 200
    assert regulator.client.get("/v1/payments").status_code == 401
    # A bank's operator key is unknown to the regulator's gateway, and the other way round.
    response = regulator.get("/v1/payments", key=bank.operator_key)
    assert (response.status_code, response.get_json()["code"]) == (401, "unauthenticated")
    for path in ("/v1/supply", "/v1/positions", "/v1/settlement-cycles", "/v1/reference-data"):
        response = bank.get(path, key=regulator.operator_key)
        assert (response.status_code, response.get_json()["code"]) == (401, "unauthenticated"), path
    response = bank.client.post("/v1/accounts", json={"holder": "X", "jurisdiction": "US", "kyc_ref": "K"},
                                headers=bank.headers(regulator.operator_key))  # fmt: skip
    assert response.status_code == 401


def test_the_regulator_gateway_mounts_only_its_own_routes(regulator: Gateway, make_gateway: GatewayFactory) -> None:
    assert regulator.client.post("/v1/accounts", json={}, headers=regulator.headers()).status_code == 404
    assert regulator.client.post("/v1/payments", json={}, headers=regulator.headers()).status_code == 405
    assert regulator.get("/v1/accounts/acc-1").status_code == 404
    # its webhooks are its own: alerts pushed to the regulator, not a merchant's payments
    assert regulator.get("/v1/webhooks").get_json() == {"webhooks": []}
    document = regulator.client.get("/openapi.json").get_json()
    assert document["info"]["title"] == "Deposit-token regulator API"
    assert "/v1/corridor-policy/history" in document["paths"] and "/v1/accounts" not in document["paths"]
    assert "regulator API" in regulator.client.get("/docs").get_data(as_text=True)
    bank_document = make_gateway(US).client.get("/openapi.json").get_json()
    assert "/v1/accounts" in bank_document["paths"] and "/v1/corridor-policy" not in bank_document["paths"]


def test_csv_cells_cannot_become_spreadsheet_formulas() -> None:
    from gateway.bank_api.csv_export import cell

    assert [cell(v) for v in ("=HYPERLINK(1)", "+1+1", "@SUM", "-3.00", "-x", "plain", None, True, 7)] == [
        "'=HYPERLINK(1)", "'+1+1", "'@SUM", "-3.00", "'-x", "plain", "", "true", "7",
    ]  # fmt: skip
