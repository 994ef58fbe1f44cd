"""Corridor policy management through the regulator's gateway, and its caps as the banks' gateways meet them."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.bank_api.ledger import ContractRejected
from tests.unit.regulator.conftest import HK, SG, US, Gateway, GatewayFactory, Ledger

CNH_RULE = {"currency": "CNH", "cross_border_only": True}


def _put(regulator: Gateway, body: dict[str, Any], **headers: str) -> Any:
    return regulator.client.put("/v1/corridor-policy", json=body, headers={**regulator.headers(), **headers})


def _cap(**limits: str | None) -> dict[str, Any]:
    return {"currency": "USD", "from": "US", "to": "HK", **limits}


@pytest.fixture
def banks(make_gateway: GatewayFactory, contract: Ledger) -> dict[str, Any]:
    """USBank's and HKBank's gateways; a US merchant with 5 000.00 USD and an HK merchant."""
    us, hk = make_gateway(US), make_gateway(HK)
    payer = us.client.post("/v1/accounts", json={"holder": "Payer Co", "jurisdiction": "US", "kyc_ref": "K-1"},
                           headers=us.headers()).get_json()  # fmt: skip
    payee = hk.client.post("/v1/accounts", json={"holder": "Payee Ltd", "jurisdiction": "HK", "kyc_ref": "K-2"},
                           headers=hk.headers()).get_json()  # fmt: skip
    issued = us.client.post("/v1/issuances", headers=us.headers(), json={
        "account_id": payer["account"]["account_id"], "currency": "USD", "amount": "5000.00", "deposit_ref": "d-1",
    })  # fmt: skip
    assert issued.status_code == 201
    return {"us": us, "hk": hk, "payer": payer, "payee": payee["account"]["account_id"]}


def _pay(banks: dict[str, Any], amount: str, key: str) -> Any:
    return banks["us"].client.post(
        "/v1/payments",
        json={"payee_bank": HK, "payee_account": banks["payee"], "currency": "USD", "amount": amount},
        headers={"Authorization": f"Bearer {banks['payer']['api_key']}", "Idempotency-Key": key},
    )


def _balance(banks: dict[str, Any]) -> str:
    account = banks["payer"]["account"]["account_id"]
    body = banks["us"].ok(f"/v1/accounts/{account}")
    return str(body["balances"]["USD"])


def test_the_regulator_sets_a_new_version_through_its_gateway(regulator: Gateway, contract: Ledger) -> None:
    body = {
        "base_version": 1,
        "rules": [CNH_RULE, {"currency": "USD", "allowed": [["US", "HK"], ["SG", "HK"]]}],
        "caps": [_cap(per_payment="1000.00", daily="2500.50")],
        "note": "capital-flow measure 2025/7",
    }
    response = _put(regulator, body)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["version"], answer["note"]) == (2, "capital-flow measure 2025/7")
    assert answer["caps"] == [_cap(per_payment="1000.00", daily="2500.50")]
    assert answer == regulator.ok("/v1/corridor-policy")
    # On the ledger: minor units, endorsed by the regulator, the version it replaced kept.
    in_force = contract.query(SG, "GetCorridorPolicy")
    assert in_force["caps"] == [{"currency": "USD", "from": "US", "to": "HK", "per_payment": 100_000, "daily": 250_050}]
    assert in_force["tx_id"] == answer["tx_id"]
    assert [v["version"] for v in regulator.ok("/v1/corridor-policy/history")["versions"]] == [2, 1]


def test_a_change_from_a_stale_version_is_refused_and_changes_nothing(regulator: Gateway, contract: Ledger) -> None:
    assert _put(regulator, {"base_version": 1, "rules": [CNH_RULE]}).status_code == 200
    before = contract.snapshot()
    response = _put(regulator, {"base_version": 1, "rules": []})
    assert response.status_code == 409
    assert response.get_json()["code"] == "invalid_state"
    assert "the corridor policy is at version 2, not 1" in response.get_json()["detail"]
    assert contract.snapshot() == before


def test_a_retried_change_with_its_idempotency_key_is_answered_once(regulator: Gateway) -> None:
    body = {"base_version": 1, "rules": [CNH_RULE], "note": "once"}
    first = _put(regulator, body, **{"Idempotency-Key": "change-1"})
    again = _put(regulator, body, **{"Idempotency-Key": "change-1"})
    assert (first.status_code, again.status_code, again.headers.get("Idempotent-Replayed")) == (200, 200, "true")
    assert again.get_json() == first.get_json()
    assert regulator.ok("/v1/corridor-policy")["version"] == 2


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"rules": []}, 400, "base_version is required"),
        ({"base_version": "1", "rules": []}, 400, "base_version is required"),
        ({"base_version": 1}, 400, "rules is required"),
        ({"base_version": 1, "rules": {}}, 400, "rules must be a list of objects"),
        ({"base_version": 1, "rules": [], "caps": None}, 400, "caps must be a list of objects"),
        ({"base_version": 1, "rules": [], "colour": 1}, 400, "unknown field(s): colour"),
        ({"base_version": 1, "rules": [{"currency": "USD"}]}, 400,
         "rules[0]: cross_border_only or allowed is required"),
        ({"base_version": 1, "rules": [{"currency": "USD", "cross_border_only": "yes"}]}, 400,
         "rules[0]: cross_border_only must be true or false"),
        ({"base_version": 1, "rules": [{"currency": "USD", "allowed": [["US"]]}]}, 400,
         "rules[0]: allowed must be a list of [jurisdiction, jurisdiction] pairs"),
        ({"base_version": 1, "rules": [{"currency": "XAU", "cross_border_only": True}]}, 400,
         "rules[0]: currency: currency XAU is not used on this network"),
        ({"base_version": 1, "rules": [], "caps": [_cap()]}, 400, "caps[0]: per_payment or daily is required"),
        ({"base_version": 1, "rules": [], "caps": [_cap(daily="10.001")]}, 400,
         "caps[0]: daily has more than 2 decimal places"),
        ({"base_version": 1, "rules": [], "caps": [_cap(daily=5)]}, 400, "caps[0]: daily must be a decimal string"),
        ({"base_version": 1, "rules": [], "caps": [{**_cap(daily="1"), "to": "hk"}]}, 400, "caps[0]: to is malformed"),
        ({"base_version": 1, "rules": [], "note": "x" * 201}, 400, "note must be at most 200 characters"),
        # Refused by the contract, which names the entry too.
        ({"base_version": 1, "rules": [CNH_RULE, CNH_RULE]}, 400, "'rules[1]': CNH has a rule already"),
        ({"base_version": 1, "rules": [], "caps": [_cap(daily="1"), _cap(per_payment="2")]}, 400,
         "'caps[1]': USD US->HK has a cap already"),
    ],
)  # fmt: skip
def test_bad_changes_are_refused_by_name(regulator: Gateway, body: dict[str, Any], status: int, detail: str) -> None:
    response = _put(regulator, body)
    assert response.status_code == status, response.get_json()
    assert detail in response.get_json()["detail"]
    assert regulator.ok("/v1/corridor-policy")["version"] == 1


def test_no_bank_can_change_the_policy(make_gateway: GatewayFactory, regulator: Gateway) -> None:
    hk = make_gateway(HK)
    assert hk.client.put("/v1/corridor-policy", json={"base_version": 1, "rules": []},
                         headers=hk.headers()).status_code == 404  # fmt: skip
    with pytest.raises(ContractRejected) as refused:
        hk.ledger.set_corridor_policy({"rules": []})
    assert (refused.value.code, refused.value.status) == ("not_authorized", 403)
    assert refused.value.message == "only the regulator may change the corridor policy"
    assert regulator.ok("/v1/corridor-policy")["version"] == 1


def test_a_bank_gateway_refuses_a_payment_over_the_cap_as_a_409_naming_it(
    regulator: Gateway, banks: dict[str, Any]
) -> None:
    capped = {"base_version": 1, "rules": [CNH_RULE], "caps": [_cap(per_payment="1000.00")]}
    assert _put(regulator, capped).status_code == 200
    response = _pay(banks, "1000.01", "too-big")
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["code"] == "corridor_cap_exceeded"
    assert problem["detail"] == (
        "corridor cap USD US->HK (policy version 2): 100001 is above the 100000 allowed per payment"
    )
    assert _balance(banks) == "5000.00"
    assert regulator.ok("/v1/payments")["payments"] == []
    assert _pay(banks, "1000.00", "at-cap").status_code == 201
    assert _balance(banks) == "4000.00"


def test_the_daily_cap_and_what_the_regulator_sees_of_its_use(
    regulator: Gateway, banks: dict[str, Any], contract: Ledger
) -> None:
    assert _pay(banks, "100.00", "before-the-cap").status_code == 201  # under version 1: not counted
    capped = {"base_version": 1, "rules": [CNH_RULE], "caps": [_cap(daily="300.00")]}
    assert _put(regulator, capped).status_code == 200
    assert _pay(banks, "200.00", "d-1").status_code == 201
    refused = _pay(banks, "100.01", "d-2")
    assert (refused.status_code, refused.get_json()["code"]) == (409, "corridor_cap_exceeded")
    assert refused.get_json()["detail"].endswith(
        "USBankMSP sent 20000 in this corridor on 2025-01-06 (UTC); 10001 more would pass the daily cap of 30000"
    )
    assert _pay(banks, "100.00", "d-3").status_code == 201
    usage = regulator.ok("/v1/corridor-usage?day=2025-01-06")
    assert usage == {
        "day": "2025-01-06",
        "corridors": [
            {"currency": "USD", "from": "US", "to": "HK", "per_payment": None, "daily": "300.00",
             "banks": [{"bank": US, "sent": "300.00", "payments": 2, "remaining": "0.00"}]},
        ],
    }  # fmt: skip
    rows = regulator.get("/v1/corridor-usage?day=2025-01-06&format=csv").get_data(as_text=True).splitlines()
    assert rows == ["day,currency,from,to,per_payment,daily,bank,sent,payments,remaining",
                    "2025-01-06,USD,US,HK,,300.00,USBankMSP,300.00,2,0.00"]  # fmt: skip
    # The next UTC day starts from nothing.
    contract.channel.advance(24 * 3600)
    assert regulator.ok("/v1/corridor-usage?day=2025-01-07")["corridors"][0]["banks"][0]["sent"] == "0.00"
    assert _pay(banks, "300.00", "d-4").status_code == 201
    bad = regulator.get("/v1/corridor-usage?day=2025-02-30")
    assert (bad.status_code, bad.get_json()["detail"]) == (400, "day must be a date such as 2025-01-06 (UTC)")
