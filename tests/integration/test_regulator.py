"""The regulator's seat on the real network: its gateway's views, corridor policy and caps.

Merchants pay one another through their banks' REST gateways; the regulator's gateway (started
by ``network up`` like the banks') must show exactly those payments, with their timelines, in
its lists, CSV exports, positions and settlement cycles, and never a customer's data. The
regulator changes the corridor policy through its gateway: a change applies to the next
payment and not to one already initiated, a cap refuses the payment that crosses it and changes
nothing, and no bank can change the policy, not even with altered chaincode. Keys do not cross:
a bank's key is refused by the regulator's gateway and the regulator's by a bank's.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.bank_api.webhooks import verify
from tests.integration.bank_api_support import (
    TIMEOUT,
    BankGateway,
    Merchant,
    gateways_of,
    unique,
    wait_for,
    webhook_receiver,
)
from tests.integration.conftest import network_cli
from tests.integration.deposit_token_support import Consortium, Refused, altered_chaincode

pytestmark = pytest.mark.network

US, HK, SG, REG = "USBankMSP", "HKBankMSP", "SGBankMSP", "RegulatorMSP"
CNH_RULE = {"currency": "CNH", "cross_border_only": True}
CUSTOMER_TEXT = ("Regulator Test Buyer", "Regulator Test Seller", "INV-REG-PRIVATE")


@dataclass
class Seat:
    regulator: BankGateway
    banks: dict[str, BankGateway]
    buyer: Merchant  # at USBank
    seller: Merchant  # at HKBank
    sg_seller: Merchant  # at SGBank
    started: str  # RFC 3339, a little before the first payment of this module
    figures: dict[str, list[float]] = field(default_factory=dict)

    def reg(self, path: str, **kwargs: Any) -> requests.Response:
        return self.regulator.get(path, **kwargs)

    def ok(self, path: str) -> Any:
        response = self.reg(path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def put_policy(self, body: dict[str, Any]) -> requests.Response:
        return requests.put(
            self.regulator.url + "/v1/corridor-policy", json=body, headers=self.regulator.op, timeout=TIMEOUT
        )

    def restore_policy(self) -> None:
        """Leave the shared network with the policy it started with (a new version of it)."""
        current = self.ok("/v1/corridor-policy")
        if current["rules"] != [{"currency": "CNH", "cross_border_only": True, "allowed": None}] or current["caps"]:
            response = self.put_policy({"base_version": current["version"], "rules": [CNH_RULE], "note": "restored"})
            assert response.status_code == 200, response.text

    def pay(
        self, amount: str, payee: Merchant | None = None, payee_bank: str = HK, key: str | None = None
    ) -> requests.Response:
        return self.banks[US].pay(
            self.buyer, payee_bank, (payee or self.seller).account_id, "USD", amount, key or unique("reg-pay"),
            remittance="INV-REG-PRIVATE",
        )  # fmt: skip

    def paid(self, amount: str, payee: Merchant | None = None, payee_bank: str = HK) -> str:
        """A payment through USBank's gateway, waited for until the regulator sees it completed."""
        response = self.pay(amount, payee, payee_bank)
        assert response.status_code == 201, response.text
        payment_id: str = response.json()["payment_id"]
        accepted = time.monotonic()
        assert self.completed_at_regulator(payment_id), f"payment {payment_id} never showed completed"
        self.figures.setdefault("accepted_to_completed_at_regulator_s", []).append(time.monotonic() - accepted)
        return payment_id

    def completed_at_regulator(self, payment_id: str, timeout: float = 120) -> bool:
        def completed() -> bool:
            response = self.reg(f"/v1/payments/{payment_id}")
            return response.status_code == 200 and response.json()["status"] == "completed"

        return bool(wait_for(completed, timeout=timeout, interval=0.2))


def _regulator_gateway(profile: dict[str, Any]) -> BankGateway:
    org = profile["orgs"][REG]
    return BankGateway(REG, org["gateway_url"], Path(org["operator_key_file"]))


@pytest.fixture(scope="module")
def seat(network: dict[str, Any]) -> Iterator[Seat]:
    regulator = _regulator_gateway(network)
    banks = gateways_of(network)
    assert wait_for(regulator.ready, timeout=120), "the regulator's gateway is not ready"
    for bank in banks.values():
        assert wait_for(bank.ready, timeout=120), f"{bank.msp_id}'s gateway is not ready"
    started = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    buyer = banks[US].open_account("Regulator Test Buyer", "US")
    banks[US].issue(buyer.account_id, "USD", "5000.00")
    seller = banks[HK].open_account("Regulator Test Seller", "HK")
    sg_seller = banks[SG].open_account("Regulator Test Seller", "SG")
    seat = Seat(regulator, banks, buyer, seller, sg_seller, started)
    yield seat
    seat.restore_policy()
    summary = ", ".join(
        f"{name} median {sorted(values)[len(values) // 2]:.2f} (n={len(values)})"
        for name, values in seat.figures.items()
    )
    sys.stderr.write(f"regulator figures: {summary}\n")


def _csv(response: requests.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_each_view_shows_the_payments_made_through_the_bank_gateways(seat: Seat) -> None:
    first = seat.paid("12.34")
    second = seat.paid("56.78")
    to_sg = seat.paid("9.00", seat.sg_seller, SG)
    ours = {first, second, to_sg}
    since = f"from={seat.started}"

    listed = seat.ok(f"/v1/payments?payer_bank={US}&{since}&page_size=100")["payments"]
    by_id = {p["payment_id"]: p for p in listed if p["payment_id"] in ours}
    assert set(by_id) == ours
    for payment_id, amount, payee_bank in ((first, "12.34", HK), (second, "56.78", HK), (to_sg, "9.00", SG)):
        record = by_id[payment_id]
        assert (record["payer_bank"], record["payee_bank"], record["currency"], record["amount"]) == (
            US, payee_bank, "USD", amount,
        )  # fmt: skip
        assert [step["status"] for step in record["timeline"]] == ["initiated", "completed"]
        assert record["corridor_version"] >= 1 and len(record["details_hash"]) == 64
        assert seat.ok(f"/v1/payments/{payment_id}") == record
    # Newest first, and the filters narrow it as they say.
    assert [p["payment_id"] for p in listed if p["payment_id"] in ours] == [to_sg, second, first]
    narrowed = seat.ok(f"/v1/payments?payee_bank={HK}&currency=USD&min_amount=12.34&max_amount=56.78&{since}")
    assert {p["payment_id"] for p in narrowed["payments"]} & ours == {first, second}
    assert all(12.34 <= float(p["amount"]) <= 56.78 for p in narrowed["payments"])
    assert {p["payment_id"] for p in seat.ok(f"/v1/payments?bank={SG}&{since}")["payments"]} & ours == {to_sg}
    assert seat.ok(f"/v1/payments?status=initiated&{since}&payer_bank={US}")["payments"] == []
    # A page at a time, each payment once.
    walked: list[str] = []
    cursor = ""
    while True:
        page = seat.ok(f"/v1/payments?payer_bank={US}&{since}&page_size=1{cursor}")
        walked += [p["payment_id"] for p in page["payments"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert [p for p in walked if p in ours] == [to_sg, second, first] and len(walked) == len(set(walked))
    rows = _csv(seat.reg(f"/v1/payments?payer_bank={US}&{since}&format=csv"))
    exported = {row["payment_id"]: row for row in rows}
    assert set(exported) >= ours
    assert (exported[first]["amount"], exported[first]["status"], exported[first]["payee_bank"]) == (
        "12.34",
        "completed",
        HK,
    )
    assert exported[first]["completed_at"] >= exported[first]["initiated_at"] > ""

    # Supply per token class: what each bank's own gateway reports.
    regulator_supply = {(c["issuer"], c["currency"]): c["supply"] for c in seat.ok("/v1/supply")["token_classes"]}
    for msp, bank in seat.banks.items():
        own = bank.get("/v1/supply").json()["token_classes"]
        for item in own:
            if item["issuer"] == msp:
                assert regulator_supply[(msp, item["currency"])] == item["supply"], (msp, item)
    supply_rows = _csv(seat.reg("/v1/supply?format=csv"))
    assert {(r["issuer"], r["currency"]): r["supply"] for r in supply_rows} == regulator_supply

    # Net positions, then a settlement cycle that takes our payments, and who has not confirmed it.
    positions = seat.ok("/v1/positions")["positions"]
    assert float(positions[US]["USD"]) <= -(12.34 + 56.78 + 9.00) + 1e-9
    opened = seat.banks[HK].post("/v1/settlement-cycles", {"cycle_id": unique("reg-cycle")})
    assert opened.status_code == 201, opened.text
    cycle_id = opened.json()["cycle_id"]
    # The regulator reads its own peer, which commits each of these a moment after the bank's does.
    seen = wait_for(lambda: seat.reg(f"/v1/settlement-cycles/{cycle_id}").status_code == 200, 60, 0.5)
    assert seen, f"the regulator never saw cycle {cycle_id}"
    cycle = seat.ok(f"/v1/settlement-cycles/{cycle_id}")
    assert cycle["status"] == "open" and set(cycle["pending_banks"]) == set(cycle["banks"]) >= {US, HK, SG}
    assert seat.ok("/v1/positions")["positions"].get(US, {}).get("USD", "0.00") == "0.00"
    confirmed = seat.banks[US].post(f"/v1/settlement-cycles/{cycle_id}/confirmation", {"external_ref": unique("rtgs")})
    assert confirmed.status_code == 200, confirmed.text
    # The regulator reads its own peer, which commits USBank's confirmation a moment after USBank's.
    def cycle_when(done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        found = wait_for(lambda: (c if done(c := seat.ok(f"/v1/settlement-cycles/{cycle_id}")) else None), 60, 0.5)
        return found or seat.ok(f"/v1/settlement-cycles/{cycle_id}")

    cycle = cycle_when(lambda c: US not in c["pending_banks"])
    assert US not in cycle["pending_banks"] and HK in cycle["pending_banks"]
    assert cycle_id in {
        c["cycle_id"] for c in seat.ok(f"/v1/settlement-cycles?pending_bank={HK}&status=open")["cycles"]
    }
    assert cycle_id not in {c["cycle_id"] for c in seat.ok(f"/v1/settlement-cycles?pending_bank={US}")["cycles"]}
    cycle_rows = {r["cycle_id"]: r for r in _csv(seat.reg("/v1/settlement-cycles?format=csv"))}
    assert US not in cycle_rows[cycle_id]["pending_banks"].split() and HK in cycle_rows[cycle_id]["pending_banks"]
    for msp in (HK, SG):
        if msp in cycle["banks"]:
            answer = seat.banks[msp].post(
                f"/v1/settlement-cycles/{cycle_id}/confirmation", {"external_ref": unique("rtgs")}
            )
            assert answer.status_code == 200, answer.text
    settled = cycle_when(lambda c: c["status"] == "settled")
    assert (settled["status"], settled["pending_banks"]) == ("settled", [])

    # The regulator never sees customer data: names, accounts, remittance text.
    for path in (f"/v1/payments?{since}", f"/v1/payments?{since}&format=csv", f"/v1/payments/{first}",
                 "/v1/positions", "/v1/settlement-cycles", "/v1/supply"):  # fmt: skip
        text = seat.reg(path).text
        for secret in (*CUSTOMER_TEXT, seat.buyer.account_id, seat.seller.account_id):
            assert secret not in text, (path, secret)


def test_a_cap_refuses_the_payment_that_crosses_it_and_changes_nothing(seat: Seat) -> None:
    version = seat.ok("/v1/corridor-policy")["version"]
    try:
        # What USBank already sent today under daily caps (a network kept from an earlier run keeps
        # its counts), read with a cap that nothing here reaches; then a cap 150.00 above it.
        roomy = {"currency": "USD", "from": "US", "to": "HK", "daily": "1000000.00"}
        first = seat.put_policy({"base_version": version, "rules": [CNH_RULE], "caps": [roomy]})
        assert first.status_code == 200, first.text
        usage = seat.ok("/v1/corridor-usage")["corridors"][0]["banks"][0]
        sent_before, count_before = Decimal(usage["sent"]), usage["payments"]
        daily = sent_before + Decimal("150.00")
        cap = {"currency": "USD", "from": "US", "to": "HK", "per_payment": "100.00", "daily": f"{daily:.2f}"}
        changed = seat.put_policy({"base_version": version + 1, "rules": [CNH_RULE], "caps": [cap], "note": "test cap"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["version"] == version + 2
        balance = seat.banks[US].balances(seat.buyer)["USD"]
        listed_before = seat.ok(f"/v1/payments?payer_bank={US}&from={seat.started}&page_size=100")["payments"]

        refused = seat.pay("100.01")
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["code"] == "corridor_cap_exceeded"
        assert problem["detail"] == (
            f"corridor cap USD US->HK (policy version {version + 2}): 10001 is above the 10000 allowed per payment"
        )
        assert seat.banks[US].balances(seat.buyer)["USD"] == balance
        assert seat.ok(f"/v1/payments?payer_bank={US}&from={seat.started}&page_size=100")["payments"] == listed_before

        seat.paid("100.00")
        over_the_day = seat.pay("50.01")
        assert (over_the_day.status_code, over_the_day.json()["code"]) == (409, "corridor_cap_exceeded")
        assert f"daily cap of {int(daily * 100)}" in over_the_day.json()["detail"]
        assert seat.banks[US].balances(seat.buyer)["USD"] == f"{Decimal(balance) - Decimal('100.00'):.2f}"
        seat.paid("50.00")
        usage = seat.ok("/v1/corridor-usage")["corridors"]
        assert usage[0]["banks"] == [
            {"bank": US, "sent": f"{daily:.2f}", "payments": count_before + 2, "remaining": "0.00"}
        ]
        # Other corridors are not capped by it.
        seat.paid("120.00", seat.sg_seller, SG)
    finally:
        seat.restore_policy()


def test_a_policy_change_applies_to_the_next_payment_and_not_to_one_already_initiated(seat: Seat) -> None:
    version = seat.ok("/v1/corridor-policy")["version"]
    # HKBank's gateway would complete the payment at once: stop it so the payment waits, initiated.
    network_cli("kill-node", f"gateway.{HK}")
    hk_running = False
    try:
        response = seat.pay("7.00")
        assert response.status_code == 201, response.text
        under_way = response.json()["payment_id"]
        assert seat.ok(f"/v1/payments/{under_way}")["status"] == "initiated"
        # USD may now move only between Singapore and Hong Kong accounts.
        rule = {"currency": "USD", "allowed": [["SG", "HK"]]}
        changed = seat.put_policy({"base_version": version, "rules": [CNH_RULE, rule], "note": "USD SG-HK only"})
        assert changed.status_code == 200, changed.text
        refused = seat.pay("7.00")
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "corridor_forbidden"
        assert f"(corridor rule USD, policy version {version + 1})" in refused.json()["detail"]
        network_cli("start-node", f"gateway.{HK}")
        hk_running = True
        # HKBank completes the payment under the version it was initiated with.
        assert seat.completed_at_regulator(under_way, timeout=180)
        record = seat.ok(f"/v1/payments/{under_way}")
        assert record["corridor_version"] == version
        history = seat.ok("/v1/corridor-policy/history")["versions"]
        assert [v["version"] for v in history[:2]] == [version + 1, version]
        assert history[0]["note"] == "USD SG-HK only" and len(history[0]["tx_id"]) == 64
        rows = _csv(seat.reg("/v1/corridor-policy/history?format=csv"))
        assert {(r["version"], r["kind"], r["currency"], r["allowed_pairs"]) for r in rows} >= {
            (str(version + 1), "rule", "USD", "HK-SG")
        }
    finally:
        if not hk_running:
            network_cli("start-node", f"gateway.{HK}")
        seat.restore_policy()


def test_no_bank_can_change_the_policy_even_with_altered_chaincode(
    seat: Seat, profile_path: Path, state_dir: Path
) -> None:
    version = seat.ok("/v1/corridor-policy")["version"]
    consortium = Consortium(profile_path)
    try:
        refusal = consortium[HK].refused("SetCorridorPolicy", None, json.dumps({"rules": []}))
        assert (refusal.status, refusal.reason) == (403, "not_authorized")
        with altered_chaincode(state_dir, HK):
            outcome = consortium[HK].attempt("RogueCorridor", None, json.dumps({"rules": []}))
            assert outcome.code == "ENDORSEMENT_POLICY_FAILURE"
        # A bank's gateway has no route for it.
        response = requests.put(
            seat.banks[HK].url + "/v1/corridor-policy", json={"base_version": version, "rules": []},
            headers=seat.banks[HK].op, timeout=TIMEOUT,
        )  # fmt: skip
        assert response.status_code in (404, 405)
    finally:
        consortium.close()
    assert seat.ok("/v1/corridor-policy")["version"] == version


def test_keys_do_not_cross_between_the_regulator_and_the_banks(seat: Seat) -> None:
    for bank in seat.banks.values():
        response = seat.reg("/v1/payments", headers=bank.op)
        assert (response.status_code, response.json()["code"]) == (401, "unauthenticated"), bank.msp_id
        for path in ("/v1/supply", "/v1/positions", "/v1/settlement-cycles"):
            response = bank.get(path, headers=seat.regulator.op)
            assert (response.status_code, response.json()["code"]) == (401, "unauthenticated"), (bank.msp_id, path)
        opened = bank.post("/v1/accounts", {"holder": "X", "jurisdiction": "US", "kyc_ref": "K"}, seat.regulator.op)
        assert opened.status_code == 401
    document = requests.get(seat.regulator.url + "/openapi.json", timeout=TIMEOUT).json()
    assert document["info"]["title"] == "Deposit-token regulator API"
    assert requests.get(seat.regulator.url + "/docs", timeout=TIMEOUT).status_code == 200


# -- alerts -------------------------------------------------------------------------------------------

QUIET_RULES = {
    "large_payment": {"enabled": True, "thresholds": {}},
    "velocity": {"enabled": True, "window_seconds": 3600, "max_payments": None, "max_amounts": {}},
    "stale_payment": {"enabled": True, "initiated_seconds": 900, "rejected_seconds": 900},
    "unconfirmed_cycle": {"enabled": True, "deadline_seconds": 14400},
    "supply_drift": {"enabled": True, "confirm_seconds": 30},
}


def _set_rule(seat: Seat, rule: str, settings: dict[str, Any]) -> None:
    response = requests.put(
        f"{seat.regulator.url}/v1/alert-rules/{rule}", json=settings, headers=seat.regulator.op, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text


def _recent_payments(seat: Seat, payer_bank: str, payee_bank: str, seconds: int) -> list[dict[str, Any]]:
    """Payments between the two banks created within the last ``seconds``, as the regulator sees them."""
    since = (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    payments: list[dict[str, Any]] = seat.ok(
        f"/v1/payments?payer_bank={payer_bank}&payee_bank={payee_bank}&from={since}"
    )["payments"]
    return payments


def _alerts(seat: Seat, rule: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = seat.ok(f"/v1/alerts?rule={rule}")["alerts"]
    return alerts


def _alert_about(seat: Seat, rule: str, payment_id: str, timeout: float = 60, interval: float = 0.1) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((a for a in _alerts(seat, rule) if payment_id in a["evidence"].get("payment_ids", [])), None)

    alert = wait_for(found, timeout=timeout, interval=interval)
    assert alert, f"no {rule} alert about payment {payment_id}"
    return dict(alert)


@pytest.fixture
def quiet_rules(seat: Seat) -> Iterator[None]:
    for rule, settings in QUIET_RULES.items():
        _set_rule(seat, rule, settings)
    yield
    for rule, settings in QUIET_RULES.items():
        _set_rule(seat, rule, settings)


def _regulator_gateway_cpu_seconds(state_dir: Path) -> float:
    from network import processes
    from tests.integration.deposit_token_support import org_home

    pid = processes.running_pid(org_home(state_dir, REG), f"gateway.{REG}")
    assert pid is not None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


@pytest.mark.usefixtures("quiet_rules")
def test_each_alert_rule_fires_on_a_crafted_pattern_and_stays_quiet_otherwise(seat: Seat) -> None:
    # A single large payment: 300.00 USD or more. The payment just below is handled first (events
    # are handled in order), so once the large one is flagged, the small one has been judged quiet.
    _set_rule(seat, "large_payment", {"enabled": True, "thresholds": {"USD": "300.00"}})
    small = seat.paid("299.99")
    response = seat.pay("300.00")
    assert response.status_code == 201, response.text
    accepted = time.monotonic()
    large = response.json()["payment_id"]
    alert = _alert_about(seat, "large_payment", large)
    seat.figures.setdefault("payment_accepted_to_alert_visible_s", []).append(time.monotonic() - accepted)
    assert alert["evidence"] | {"created_at": None} == {
        "payment_ids": [large], "payer_bank": US, "payee_bank": HK, "currency": "USD", "amount": "300.00",
        "threshold": "300.00", "created_at": None,
    }  # fmt: skip
    assert all(small not in a["evidence"]["payment_ids"] for a in _alerts(seat, "large_payment"))

    # Velocity: more than two payments from HKBank to SGBank within a minute. Earlier tests on the
    # shared network may have paid between the two within the last minute, which would make the
    # burst's first payment the one over the limit: wait for a quiet minute first.
    _set_rule(seat, "velocity", {"enabled": True, "window_seconds": 60, "max_payments": 2, "max_amounts": {}})
    assert wait_for(lambda: not _recent_payments(seat, HK, SG, 65), timeout=150, interval=2)
    burst = []
    for _ in range(3):
        response = seat.banks[HK].pay(seat.seller, SG, seat.sg_seller.account_id, "USD", "1.00", unique("burst"))
        assert response.status_code == 201, response.text
        burst.append(response.json()["payment_id"])
    alert = _alert_about(seat, "velocity", burst[2])
    assert alert["evidence"]["triggered_by"] == burst[2] and set(burst) <= set(alert["evidence"]["payment_ids"])
    assert (alert["evidence"]["payer_bank"], alert["evidence"]["payee_bank"]) == (HK, SG)
    assert not [a for a in _alerts(seat, "velocity") if a["evidence"]["triggered_by"] in burst[:2]]

    # A payment left initiated: HKBank's gateway is down, so nobody completes it.
    _set_rule(seat, "stale_payment", {"enabled": True, "initiated_seconds": 3, "rejected_seconds": 900})
    network_cli("kill-node", f"gateway.{HK}")
    try:
        response = seat.pay("2.00")
        assert response.status_code == 201, response.text
        stuck = response.json()["payment_id"]
        alert = _alert_about(seat, "stale_payment", stuck, timeout=90)
        assert (alert["evidence"]["status"], alert["evidence"]["waiting_for"]) == ("initiated", HK)
    finally:
        network_cli("start-node", f"gateway.{HK}")
    assert seat.completed_at_regulator(stuck, timeout=180)
    # Only the payment that was left waiting is flagged, not the ones of this run completed at once.
    this_run = {p["payment_id"] for p in seat.ok(f"/v1/payments?from={seat.started}&page_size=100")["payments"]}
    assert {a["evidence"]["payment_ids"][0] for a in _alerts(seat, "stale_payment")} & this_run == {stuck}

    # A settlement cycle nobody confirms within 3 s.
    _set_rule(seat, "unconfirmed_cycle", {"enabled": True, "deadline_seconds": 3})
    opened = seat.banks[HK].post("/v1/settlement-cycles", {"cycle_id": unique("late-cycle")})
    assert opened.status_code == 201, opened.text
    cycle = opened.json()

    def flagged() -> dict[str, Any] | None:
        return next(
            (a for a in _alerts(seat, "unconfirmed_cycle") if a["evidence"]["cycle_id"] == cycle["cycle_id"]), None
        )

    alert = wait_for(flagged, timeout=90, interval=0.5)
    assert alert and sorted(alert["evidence"]["pending_banks"]) == sorted(cycle["banks"])
    for msp in cycle["banks"]:
        answer = seat.banks[msp].post(
            f"/v1/settlement-cycles/{cycle['cycle_id']}/confirmation", {"external_ref": unique("rtgs")}
        )
        assert answer.status_code == 200, answer.text

    # Acknowledged, with a note.
    acknowledged = requests.post(
        f"{seat.regulator.url}/v1/alerts/{alert['alert_id']}/acknowledgement",
        json={"note": "all legs confirmed late, bank notified"}, headers=seat.regulator.op, timeout=TIMEOUT,
    )  # fmt: skip
    assert acknowledged.status_code == 200 and acknowledged.json()["state"] == "acknowledged"
    assert alert["alert_id"] not in {a["alert_id"] for a in seat.ok("/v1/alerts?state=open")["alerts"]}
    rows = _csv(seat.reg("/v1/alerts?format=csv"))
    assert {row["alert_id"] for row in rows} >= {alert["alert_id"]}


@pytest.mark.usefixtures("quiet_rules")
def test_an_alert_is_neither_lost_nor_repeated_across_a_gateway_restart(seat: Seat, state_dir: Path) -> None:
    _set_rule(seat, "large_payment", {"enabled": True, "thresholds": {"USD": "400.00"}})
    before = seat.paid("400.00")
    _alert_about(seat, "large_payment", before)
    network_cli("kill-node", f"gateway.{REG}")
    regulator_running = False
    try:
        # Made while the regulator's gateway is down: it must find it on its way back.
        response = seat.pay("401.00")
        assert response.status_code == 201, response.text
        during = response.json()["payment_id"]
        network_cli("start-node", f"gateway.{REG}")
        regulator_running = True
    finally:
        if not regulator_running:
            network_cli("start-node", f"gateway.{REG}")
    _alert_about(seat, "large_payment", during, timeout=120)
    after = seat.paid("402.00")
    _alert_about(seat, "large_payment", after)
    flagged = [a["evidence"]["payment_ids"][0] for a in _alerts(seat, "large_payment")]
    for payment_id in (before, during, after):
        assert flagged.count(payment_id) == 1, payment_id

    # What watching payments costs the regulator's gateway, in CPU per payment: the monitor reads
    # each new payment's record; the payments are waited for at the payer's gateway, and the
    # regulator's API is asked once a second, so little else runs there meanwhile.
    for name, threshold, raising in (("quiet", "500.00", False), ("alerting", "0.01", True)):
        _set_rule(seat, "large_payment", {"enabled": True, "thresholds": {"USD": threshold}})
        cpu_before = _regulator_gateway_cpu_seconds(state_dir)
        paid = [_paid_at_the_bank(seat, "0.05") for _ in range(20)]
        last = paid[-1] if raising else _paid_at_the_bank(seat, "500.00")
        _alert_about(seat, "large_payment", last, timeout=120, interval=1.0)
        cpu = _regulator_gateway_cpu_seconds(state_dir) - cpu_before
        flagged = {a["evidence"]["payment_ids"][0] for a in _alerts(seat, "large_payment")}
        assert set(paid) <= flagged if raising else not set(paid) & flagged
        count = len(paid) + (0 if raising else 1)
        seat.figures.setdefault(f"regulator_gateway_cpu_ms_per_payment_{name}", []).append(cpu * 1000 / count)


def _paid_at_the_bank(seat: Seat, amount: str) -> str:
    response = seat.pay(amount)
    assert response.status_code == 201, response.text
    payment_id: str = response.json()["payment_id"]
    completed = wait_for(lambda: seat.banks[US].payment(payment_id, seat.buyer.headers)["status"] == "completed",
                         timeout=120, interval=0.2)  # fmt: skip
    assert completed, payment_id
    return payment_id


# -- disclosure on request ------------------------------------------------------------------------------

BASIS = "Anti-Money Laundering Ordinance s.12, inquiry REG-TEST"


def _file_disclosure(seat: Seat, payment_id: str) -> str:
    response = requests.post(
        seat.regulator.url + "/v1/disclosure-requests",
        json={"payment_id": payment_id, "legal_basis": BASIS},
        headers={**seat.regulator.op, "Idempotency-Key": unique("disclose")},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def _seen_by(bank: BankGateway, request_id: str) -> bool:
    response = bank.get(f"/v1/disclosure-requests/{request_id}")
    return response.status_code == 200


def _checked(seat: Seat, request_id: str, bank: str) -> dict[str, Any]:
    """The regulator's check of what ``bank`` delivered, once the delivery reached its peer."""

    def delivered() -> dict[str, Any] | None:
        delivery = seat.ok(f"/v1/disclosure-requests/{request_id}")["deliveries"].get(bank)
        return delivery if delivery and delivery["check"] != "awaiting_data" else None

    delivery = wait_for(delivered, timeout=60, interval=0.25)
    assert delivery, f"{bank}'s delivery for {request_id} never reached the regulator"
    return dict(delivery)


@pytest.fixture
def alert_hook(seat: Seat) -> Iterator[tuple[dict[str, Any], list[tuple[str, bytes]]]]:
    """An alert webhook of the regulator's to a local receiver: the subscription and what arrived."""
    with webhook_receiver() as (base_url, received):
        hook = requests.post(
            f"{seat.regulator.url}/v1/webhooks", json={"url": f"{base_url}/alerts"},
            headers=seat.regulator.op, timeout=TIMEOUT,
        )  # fmt: skip
        assert hook.status_code == 201, hook.text
        yield hook.json(), received
        requests.delete(f"{seat.regulator.url}/v1/webhooks/{hook.json()['id']}", headers=seat.regulator.op,
                        timeout=TIMEOUT)  # fmt: skip


@pytest.mark.usefixtures("quiet_rules")
def test_supply_over_time_a_supply_moved_without_a_report_and_alerts_pushed_signed(
    seat: Seat, profile_path: Path, state_dir: Path, alert_hook: tuple[dict[str, Any], list[tuple[str, bytes]]]
) -> None:
    hook, received = alert_hook
    consortium = Consortium(profile_path)
    minted = False
    try:
        # Supply over time: once the channel is quiet, the last point of USBank's USD history is its supply now.
        history_url = f"/v1/supply/history?issuer={US}&currency=USD&interval=day&from=2020-01-01T00:00:00Z"

        def history_matches_supply() -> bool:
            now = {(c["issuer"], c["currency"]): c["supply"] for c in seat.ok("/v1/supply")["token_classes"]}
            points = seat.ok(history_url)["points"]
            return bool(points) and points[-1]["supply"] == now[(US, "USD")]

        assert wait_for(history_matches_supply, timeout=60, interval=1)
        assert sum(p["changes"] for p in seat.ok(history_url)["points"]) >= 2

        # USBank, running altered chaincode, mints 7.00 USD of its own without reporting it.
        _set_rule(seat, "supply_drift", {"enabled": True, "confirm_seconds": 5})
        with altered_chaincode(state_dir, US):
            outcome = consortium[US].attempt("RogueMint", None, US, "USD", "700")
            assert outcome.code == "VALID", outcome
            minted = True
            raised = time.monotonic()

            def drift() -> dict[str, Any] | None:
                wanted = (US, "7.00")
                alerts = _alerts(seat, "supply_drift")
                found = (a for a in alerts if (a["evidence"]["issuer"], a["evidence"]["difference"]) == wanted)
                return next(found, None)

            alert = wait_for(drift, timeout=120, interval=1)
            assert alert, "no supply_drift alert for USBank's unreported 7.00 USD"
            seat.figures.setdefault("unreported_mint_to_alert_s", []).append(time.monotonic() - raised)
            assert alert["evidence"]["currency"] == "USD"
            assert Decimal(alert["evidence"]["ledger_supply"]) - Decimal(alert["evidence"]["reported_supply"]) == 7
            # Put right, unreported again: the books match the supply once more.
            assert consortium[US].attempt("RogueMint", None, US, "USD", "-700").code == "VALID"
            minted = False

        # The alert was pushed, signed with the webhook's secret.
        def pushed() -> dict[str, Any] | None:
            for signature, body in list(received):
                event = json.loads(body)
                if event["data"]["alert_id"] == alert["alert_id"]:
                    assert verify(hook["secret"], signature, body, now=int(time.time()))
                    return dict(event)
            return None

        event = wait_for(pushed, timeout=60, interval=0.5)
        assert event and event["type"] == "alert.raised" and event["data"]["rule"] == "supply_drift"
        deliveries = seat.ok(f"/v1/webhooks/{hook['id']}/deliveries")["deliveries"]
        assert ("delivered", 204) in {(d["state"], d["last_status_code"]) for d in deliveries}
    finally:
        if minted:
            with altered_chaincode(state_dir, US):
                consortium[US].attempt("RogueMint", None, US, "USD", "-700")
        consortium.close()


def test_disclosure_on_request_approved_refused_and_lied_about(seat: Seat, profile_path: Path, state_dir: Path) -> None:
    payment_id = seat.paid("33.33")
    request_id = _file_disclosure(seat, payment_id)
    listed = {r["request_id"]: r for r in seat.ok("/v1/disclosure-requests")["requests"]}
    assert (listed[request_id]["legal_basis"], listed[request_id]["requested_by"]) == (BASIS, REG)
    # Both banks of the payment see it; USBank's operator approves, HKBank's refuses.
    for msp in (US, HK):
        assert wait_for(lambda msp=msp: _seen_by(seat.banks[msp], request_id), timeout=60), msp
    approved = seat.banks[US].post(f"/v1/disclosure-requests/{request_id}/approval", {})
    assert approved.status_code == 200, approved.text
    refused = seat.banks[HK].post(f"/v1/disclosure-requests/{request_id}/refusal", {"reason": "needs a court order"})
    assert refused.status_code == 200, refused.text
    delivery = _checked(seat, request_id, US)
    assert delivery["check"] == "verified"
    assert (delivery["details"]["payer_account"], delivery["details"]["payee_account"]) == (
        seat.buyer.account_id, seat.seller.account_id,
    )  # fmt: skip
    assert delivery["details"]["remittance"] == "INV-REG-PRIVATE"
    answers = seat.ok(f"/v1/disclosure-requests/{request_id}")["answers"]
    assert (answers[US]["status"], answers[HK]["status"], answers[HK]["reason"]) == (
        "disclosed", "refused", "needs a court order",
    )  # fmt: skip
    assert len(answers[US]["tx_id"]) == 64

    # No other bank can read it: SGBank's client is refused, and its peer does not hold it.
    consortium = Consortium(profile_path)
    try:
        with pytest.raises(Refused) as refused_to_sg:
            consortium[SG].evaluate("GetDisclosure", {"details": True}, request_id)
        assert (refused_to_sg.value.status, refused_to_sg.value.reason) == (403, "not_authorized")

        # A bank that lies: HKBank's altered chaincode delivers made-up details for a new request.
        lied_about = _file_disclosure(seat, payment_id)
        assert wait_for(lambda: _seen_by(seat.banks[HK], lied_about), timeout=60)
        made_up = {"payer_account": "someone-else", "payer_jurisdiction": "US",
                   "payee_account": seat.seller.account_id, "remittance": "nothing to see"}  # fmt: skip
        with altered_chaincode(state_dir, HK):
            consortium[HK].submit("RogueDisclose", None, lied_about, json.dumps(made_up))
    finally:
        consortium.close()
    delivery = _checked(seat, lied_about, HK)
    assert (delivery["check"], delivery["details"]["payer_account"]) == ("mismatch", "someone-else")


def test_the_readmes_regulator_examples_work_as_written(seat: Seat) -> None:
    import re
    import subprocess

    from tests.integration.conftest import ROOT
    from tests.integration.test_readme import for_test_network, json_documents, readme_api_block

    section = (ROOT / "README.md").read_text().split("## The regulator's seat", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under 'The regulator's seat'"
    script = for_test_network(readme_api_block() + match.group(1))
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        documents = json_documents(result.stdout)
        assert any(d.get("note") == "USD outflows to HK capped" for d in documents)
        assert any(d.get("issuer") == US and "points" in d for d in documents)
        assert any(d.get("events") == ["alert.raised"] and d.get("secret") for d in documents)
        request_id = documents[-1]["request_id"]
        assert _checked(seat, request_id, US)["check"] == "verified"
    finally:
        seat.restore_policy()
        for webhook in seat.ok("/v1/webhooks")["webhooks"]:
            requests.delete(f"{seat.regulator.url}/v1/webhooks/{webhook['id']}", headers=seat.regulator.op,
                            timeout=TIMEOUT)  # fmt: skip
