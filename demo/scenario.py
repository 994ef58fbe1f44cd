"""A cross-border trade payment, end to end, through the banks' REST gateways only.

A US buyer banks with USBank; its Hong Kong supplier banks with HKBank. The buyer's
deposit becomes USD deposit tokens, it pays an invoice cross-border in USD, pays a second
one converted to HKD at a locked rate, a CNH transfer between two mainland accounts is
refused by the corridor rule, the banks net and settle, and the supplier redeems part of
its balance. Every call goes over HTTP to a gateway, as a bank's systems would make it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests


class ScenarioError(RuntimeError):
    """A step did not do what a payments person would expect; the message says what."""


@dataclass
class Bank:
    msp_id: str
    name: str
    url: str
    operator_key: str


@dataclass
class Outcome:
    """What the scenario leaves behind, for the summary and for the tests that assert on it."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> account JSON
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refusal: dict[str, Any] = field(default_factory=dict)
    cycle: dict[str, Any] = field(default_factory=dict)
    supply: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str = ""


class Api:
    """A thin HTTP caller that turns problem+json answers into readable errors."""

    def __init__(self, bank: Bank, key: str, timeout: float = 60.0) -> None:
        self.bank, self.key, self.timeout = bank, key, timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, idempotency_key: str | None = None,
             expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self.session.request(
            method, self.bank.url + path, json=body, headers=headers, timeout=self.timeout
        )
        try:
            data: dict[str, Any] = response.json()
        except ValueError:
            data = {"detail": response.text[:300]}
        if response.status_code not in expect:
            raise ScenarioError(
                f"{self.bank.name} {method} {path} answered {response.status_code} "
                f"{data.get('code', '')}: {data.get('detail') or data.get('title') or data}"
            )
        data["_status"] = response.status_code
        return data


def load_banks(profile_path: Path) -> dict[str, Bank]:
    profile = json.loads(profile_path.read_text())
    banks: dict[str, Bank] = {}
    for msp_id, org in profile["orgs"].items():
        if org["kind"] != "bank":
            continue
        key_file = Path(org["operator_key_file"])
        if not key_file.exists():
            raise ScenarioError(
                f"{org['name']}'s operator key is missing at {key_file}: is its gateway running?"
            )
        banks[org["name"]] = Bank(msp_id, org["name"], org["gateway_url"], key_file.read_text().strip())
    return banks


def money(amount: str, currency: str) -> str:
    whole, _, cents = amount.partition(".")
    return f"{currency} {int(whole):,}" + (f".{cents}" if cents else "")


def run_scenario(
    profile_path: Path, say: Callable[[str], None] = print, poll_timeout: float = 60.0
) -> Outcome:
    banks = load_banks(profile_path)
    us, hk = banks["USBank"], banks["HKBank"]
    ops = {name: Api(bank, bank.operator_key) for name, bank in banks.items()}
    out = Outcome(run_id=uuid.uuid4().hex[:8])
    run = out.run_id

    def step(number: int, title: str) -> float:
        say(f"\n{number}. {title}")
        return time.monotonic()

    def took(started: float, what: str) -> float:
        seconds = time.monotonic() - started
        say(f"   {what} in {seconds:.1f} s")
        return seconds

    # 1 -------------------------------------------------------------------
    t = step(1, "Onboarding: a US buyer at USBank and a Hong Kong supplier at HKBank")
    buyer = ops["USBank"].call("POST", "/v1/accounts", {
        "holder": "Acme Outdoor Supplies Inc.", "jurisdiction": "US", "kyc_ref": f"KYC-US-{run}-0001"})  # fmt: skip
    supplier = ops["HKBank"].call("POST", "/v1/accounts", {
        "holder": "Kowloon Precision Textiles Ltd.", "jurisdiction": "HK",
        "kyc_ref": f"KYC-HK-{run}-0042"})  # fmt: skip
    buyer_id, supplier_id = buyer["account"]["account_id"], supplier["account"]["account_id"]
    buyer_api = Api(us, buyer["api_key"])
    supplier_api = Api(hk, supplier["api_key"])
    say(f"   USBank opened account {buyer_id} for Acme Outdoor Supplies (US) and issued its API key")
    say(f"   HKBank opened account {supplier_id} for Kowloon Precision Textiles (HK) and issued its API key")
    out.timings["onboarding"] = took(t, "both customers onboarded")

    # 2 -------------------------------------------------------------------
    t = step(2, "The buyer's USD 250,000.00 deposit becomes USBank USD deposit tokens")
    issued = ops["USBank"].call("POST", "/v1/issuances", {
        "account_id": buyer_id, "currency": "USD", "amount": "250000.00",
        "deposit_ref": f"CORE-DEP-{run}-7781"})  # fmt: skip
    if not issued.get("issued"):
        raise ScenarioError("the issuance was not applied")
    out.timings["issue"] = took(t, "USD 250,000.00 tokenised (deposit reference CORE-DEP-…-7781)")

    # 3 -------------------------------------------------------------------
    t = step(3, "The buyer pays invoice INV-2026-0042 cross-border: USD 120,000.00 to the supplier at HKBank")
    p1 = buyer_api.call("POST", "/v1/payments", {
        "payee_bank": hk.msp_id, "payee_account": supplier_id, "currency": "USD", "amount": "120000.00",
        "remittance": "INV-2026-0042 cotton canvas, 4 containers"}, idempotency_key=f"inv-0042-{run}")  # fmt: skip
    say(f"   payment {p1['payment_id']} initiated by USBank (buyer debited, USBank USD burned)")
    p1 = wait_for_status(buyer_api, p1["payment_id"], {"completed"}, poll_timeout)
    out.payments["usd"] = p1
    out.timings["usd_payment"] = took(t, "HKBank credited the supplier on its own: settled end to end")

    # 4 -------------------------------------------------------------------
    t = step(4, "A second invoice, USD 20,000.00, delivered in HKD at a locked rate")
    p2 = buyer_api.call("POST", "/v1/payments", {
        "payee_bank": hk.msp_id, "payee_account": supplier_id, "currency": "USD", "amount": "20000.00",
        "payee_currency": "HKD", "remittance": "INV-2026-0043 dyeing services"},
        idempotency_key=f"inv-0043-{run}")  # fmt: skip
    p2 = wait_for_status(buyer_api, p2["payment_id"], {"completed"}, poll_timeout)
    out.payments["fx"] = p2
    say(
        f"   rate locked at {p2.get('rate')} HKD per USD: the supplier receives {money(p2['payee_amount'], 'HKD')}"
    )
    out.timings["fx_payment"] = took(t, "converted and credited")

    # 5 -------------------------------------------------------------------
    t = step(5, "A CNH payment between two mainland accounts is refused (CNH tokens are cross-border only)")
    cn_a = ops["HKBank"].call("POST", "/v1/accounts", {
        "holder": "Shenzhen Trading Co.", "jurisdiction": "CN", "kyc_ref": f"KYC-CN-{run}-0007"})  # fmt: skip
    cn_b = ops["HKBank"].call("POST", "/v1/accounts", {
        "holder": "Guangzhou Components Ltd.", "jurisdiction": "CN", "kyc_ref": f"KYC-CN-{run}-0008"})  # fmt: skip
    ops["HKBank"].call("POST", "/v1/issuances", {
        "account_id": cn_a["account"]["account_id"], "currency": "CNH", "amount": "50000.00",
        "deposit_ref": f"CORE-DEP-{run}-CNH1"})  # fmt: skip
    cn_api = Api(hk, cn_a["api_key"])
    refusal = cn_api.call("POST", "/v1/payments", {
        "payee_bank": hk.msp_id, "payee_account": cn_b["account"]["account_id"], "currency": "CNH",
        "amount": "1000.00"}, idempotency_key=f"cnh-{run}", expect=(400, 403, 409, 422))  # fmt: skip
    out.refusal = refusal
    say(f"   refused with {refusal.get('code')}: {refusal.get('detail')}")
    out.timings["corridor_refusal"] = took(t, "refused before any money moved")

    # 6 -------------------------------------------------------------------
    t = step(6, "Net settlement: a cycle nets every completed interbank payment, each bank confirms its leg")
    cycle = ops["USBank"].call("POST", "/v1/settlement-cycles", {}, idempotency_key=f"cycle-{run}")
    cycle_id = cycle["cycle_id"]
    for line in describe_positions(cycle):
        say(f"   {line}")
    for name in banks:
        if _bank_in_cycle(cycle, banks[name].msp_id):
            cycle = ops[name].call("POST", f"/v1/settlement-cycles/{cycle_id}/confirmation", {
                "external_ref": f"RTGS-{run}-{banks[name].msp_id}"})  # fmt: skip
            say(f"   {name} confirmed its leg (external reference RTGS-…-{banks[name].msp_id})")
    if cycle.get("status") != "settled":
        raise ScenarioError(
            f"cycle {cycle_id} is {cycle.get('status')}, not settled, after every bank confirmed"
        )
    out.cycle = cycle
    out.timings["settlement"] = took(t, f"cycle {cycle_id} settled")

    # 7 -------------------------------------------------------------------
    t = step(7, "The supplier redeems USD 50,000.00 of its tokens back into its HKBank deposit")
    ops["HKBank"].call("POST", "/v1/redemptions", {
        "account_id": supplier_id, "currency": "USD", "amount": "50000.00",
        "withdrawal_ref": f"CORE-WDL-{run}-0099"})  # fmt: skip
    out.timings["redeem"] = took(t, "redeemed")

    # summary -------------------------------------------------------------
    out.accounts["buyer"] = buyer_api.call("GET", f"/v1/accounts/{buyer_id}")
    out.accounts["supplier"] = supplier_api.call("GET", f"/v1/accounts/{supplier_id}")
    out.supply = {name: ops[name].call("GET", "/v1/supply") for name in banks}
    say("\nBalances")
    for label, account in out.accounts.items():
        balances = ", ".join(money(v, c) for c, v in sorted(account["balances"].items()) if Decimal(v) != 0)
        say(f"   {label:<9} {account['account_id']:<30} {balances or 'nothing'}")
    say("\nSupply of deposit tokens (every bank sees the same public figures)")
    for item in out.supply["USBank"].get("token_classes", []):
        say(f"   {item['issuer']:<14} {item['currency']}  {money(item['supply'], item['currency'])}")
    say("\nNet positions of the settled cycle")
    for line in describe_positions(out.cycle):
        say(f"   {line}")
    return out


def _bank_in_cycle(cycle: dict[str, Any], msp_id: str) -> bool:
    return msp_id in (cycle.get("banks") or []) or msp_id in (cycle.get("positions") or {})


def describe_positions(cycle: dict[str, Any]) -> list[str]:
    positions = cycle.get("positions") or {}
    lines = []
    items: list[tuple[str, str, str]] = []
    if isinstance(positions, dict):
        for bank, per_ccy in positions.items():
            for ccy, amount in per_ccy.items():
                items.append((bank, ccy, amount))
    else:
        items = [(p["bank"], p["currency"], p["amount"]) for p in positions]
    for bank, ccy, amount in sorted(items):
        value = Decimal(amount)
        verb = "receives" if value > 0 else "pays" if value < 0 else "is flat in"
        lines.append(f"{bank:<14} {verb:<10} {money(str(abs(value)), ccy)}")
    return lines


def wait_for_status(api: Api, payment_id: str, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    payment: dict[str, Any] = {}
    while time.monotonic() < deadline:
        payment = api.call("GET", f"/v1/payments/{payment_id}")
        if payment.get("status") in statuses:
            return payment
        if payment.get("status") in ("rejected", "refunded") and not statuses & {"rejected", "refunded"}:
            raise ScenarioError(f"payment {payment_id} was {payment['status']}: {payment.get('reason')}")
        time.sleep(0.1)
    raise ScenarioError(f"payment {payment_id} is still {payment.get('status')} after {timeout:.0f} s")
