"""The console in a real browser (headless Chromium through Selenium) on the real network.

An operator opens and funds a buyer at USBank; the buyer logs in, pays a supplier at HKBank in
HKD after seeing the quoted rate, and watches the payment complete; a payment beyond the balance
is refused with its reason; another buyer locks money in escrow for a payee and releases part of
it, watching the escrow's figures change, and a PvP proposed on USBank's console is accepted on
HKBank's until both legs are settled; the operator sees the net positions chart drawn with data, and every
bank in a settlement cycle confirms its leg in its own console until the cycle is settled.
The regulator, in its own gateway's console (a bank operator's key is refused there), sees the
supply over time and the flows between banks drawn with data, filters payments and opens one with
its timeline, acknowledges the alert a large payment raised, and files a disclosure request; a
request for an unknown payment is refused with the API's reason.
Screenshots of the main pages land in ``.state/console-screenshots/`` (``DT_CONSOLE_SCREENSHOTS``),
with ``figures.json``: the merchant's and the regulator's home pages' weight and render times, and
the suite's time.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.bank_api_support import TIMEOUT, BankGateway, ready_gateways, unique, wait_for
from tests.integration.conftest import ROOT
from tests.integration.console_browser import Browser, browser_missing, chromium

pytestmark = pytest.mark.network

SCREENSHOTS = Path(os.environ.get("DT_CONSOLE_SCREENSHOTS", str(ROOT / ".state" / "console-screenshots")))
FIGURES: dict[str, Any] = {}
REG = "RegulatorMSP"


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    found = ready_gateways(network)
    assert {"USBankMSP", "HKBankMSP"} <= set(found)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with chromium() as driver:
        yield Browser(driver, SCREENSHOTS)
    FIGURES["browser_suite_seconds"] = round(time.monotonic() - started, 1)
    (SCREENSHOTS / "figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


@pytest.fixture(scope="module")
def buyer_key(banks: dict[str, BankGateway], browser: Browser) -> str:
    """A buyer opened and funded by USBank's operator through the console; its key as the page showed it."""
    us = banks["USBankMSP"]
    browser.login(us.url, us.op["Authorization"].removeprefix("Bearer "))
    browser.open(f"{us.url}/console/operator/accounts")
    browser.fill({"holder": "Acme Outdoor Supplies Inc.", "jurisdiction": "US", "kyc_ref": unique("KYC")})
    browser.submit_until_not_unavailable("open-account")
    key = browser.text("#merchant-key")
    account_id = browser.text("#opened-account")
    browser.open(f"{us.url}/console/operator/money?account_id={account_id}")
    browser.fill({"issue_currency": "USD", "issue_amount": "1000.00", "issue_reference": unique("DEP")})
    browser.submit_until_not_unavailable("issue")
    assert "Issued 1000.00 USD" in browser.text(".flash"), browser.driver.page_source[:3000]
    assert browser.text("#balances tr[data-currency='USD'] .num") == "1000.00 USD"
    browser.screenshot("operator-account")
    browser.logout()
    return key


def test_merchant_pays_another_bank_and_watches_it_complete(
    banks: dict[str, BankGateway], browser: Browser, buyer_key: str
) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    supplier = hk.open_account("Kowloon Precision Textiles Ltd.", "HK")

    browser.open(f"{us.url}/console/login")
    browser.screenshot("login")
    browser.fill({"api_key": buyer_key})
    browser.submit("login")
    FIGURES["merchant_home"] = _home_figures(browser, f"{us.url}/console/merchant/")
    assert browser.text("#balances tr[data-currency='USD'] .num") == "1000.00 USD"
    browser.screenshot("merchant-home")
    # the key is in no page, URL or storage the page's script can read; the session cookie is HTTP-only
    assert buyer_key not in browser.driver.page_source and buyer_key not in browser.driver.current_url
    assert browser.storage() == {"local": 0, "session": 0, "cookies": ""}

    browser.open(f"{us.url}/console/merchant/pay")
    browser.fill({"payee_bank": "HKBankMSP", "payee_account": supplier.account_id, "currency": "USD",
                  "amount": "100.00", "payee_currency": "HKD", "remittance": "INV-2024-17"})  # fmt: skip
    browser.submit("review")
    rate = browser.text("#quoted-rate")
    assert re.fullmatch(r"1 USD = [0-9.]+ HKD", rate), rate
    quoted_amount = browser.text("#payee-amount")
    browser.screenshot("merchant-pay-review")
    browser.submit_until_not_unavailable("confirm")
    assert browser.has("#payment"), browser.refusal()
    payment_id = browser.driver.current_url.rsplit("/", 1)[1]
    # the page follows the payment by itself until HKBank's gateway has completed it
    # (read by script: the page replaces the element each time it looks again)
    browser.wait(lambda d: d.execute_script("return document.getElementById('payment').dataset.status") == "completed")
    steps = [step.get_attribute("class") for step in browser.find_all("#payment .timeline li")]
    assert steps == ["step step-initiated", "step step-completed"]
    assert quoted_amount in browser.text("#payment")  # delivered what the review page quoted
    browser.screenshot("merchant-payment-completed")
    assert hk.balances(supplier) == {"HKD": quoted_amount.split()[0]}
    assert us.payment(payment_id)["rate"] == rate.split(" = ")[1].split()[0]


def test_a_refused_payment_shows_its_reason_and_changes_nothing(
    banks: dict[str, BankGateway], browser: Browser, buyer_key: str
) -> None:
    us = banks["USBankMSP"]
    browser.open(f"{us.url}/console/merchant/")
    if not browser.has("#logout"):
        browser.login(us.url, buyer_key)
    before = browser.text("#balances tr[data-currency='USD'] .num")
    browser.open(f"{us.url}/console/merchant/pay")
    browser.fill({"payee_bank": "HKBankMSP", "payee_account": "acc-anyone", "currency": "USD", "amount": "5000.00"})
    browser.submit("review")
    browser.submit_until_not_unavailable("confirm")
    words = browser.refusal()
    assert "409 insufficient_funds" in words and "Nothing was changed" in words, words
    browser.screenshot("merchant-payment-refused")
    # operator pages are refused to a merchant's key, in words
    browser.open(f"{us.url}/console/operator/")
    assert "these pages are for operator keys" in browser.refusal()
    browser.open(f"{us.url}/console/merchant/")
    assert browser.text("#balances tr[data-currency='USD'] .num") == before
    browser.logout()


def test_merchant_locks_money_in_escrow_and_releases_part_of_it(
    banks: dict[str, BankGateway], browser: Browser
) -> None:
    us = banks["USBankMSP"]
    buyer = us.open_account("Harbour Furniture Imports LLC", "US")
    us.issue(buyer.account_id, "USD", "500.00")
    seller = us.open_account("Oak & Pine Joinery Co.", "US")
    browser.login(us.url, buyer.api_key)
    browser.open(f"{us.url}/console/merchant/escrows")
    browser.fill({"payee_bank": "USBankMSP", "payee_account": seller.account_id, "currency": "USD",
                  "amount": "200.00", "release_by": "buyer", "expires_in": "3", "expires_unit": "days",
                  "on_expiry": "refund", "remittance": "PO-88"})  # fmt: skip
    browser.submit_until_not_unavailable("lock")
    assert browser.has("#escrow"), browser.refusal()
    escrow_id = browser.driver.current_url.rsplit("/", 1)[1]
    assert browser.text("#escrow-locked") == "200.00 USD" and browser.text("#escrow-available") == "200.00 USD"
    assert us.balances(buyer) == {"USD": "300.00"} and us.balances(seller) == {}
    browser.screenshot("merchant-escrow-locked")
    browser.fill({"release_amount": "75.00"})
    browser.submit_until_not_unavailable("release")
    assert "75.00 USD released" in browser.text(".flash"), browser.refusal()
    assert browser.text("#escrow-released") == "75.00 USD" and browser.text("#escrow-available") == "125.00 USD"
    assert len(browser.find_all("#releases tbody tr")) == 1
    browser.screenshot("merchant-escrow-released")
    assert us.balances(seller) == {"USD": "75.00"} and us.balances(buyer) == {"USD": "300.00"}
    # a release above what is left is refused in the API's words, and changes nothing
    browser.fill({"release_amount": "125.01"})
    browser.submit_until_not_unavailable("release")
    assert "insufficient_funds" in browser.refusal() and "Nothing was changed" in browser.refusal()
    assert browser.text("#escrow-available") == "125.00 USD" and us.balances(seller) == {"USD": "75.00"}
    browser.open(f"{us.url}/console/merchant/escrows")
    assert browser.has(f"#escrows tr[data-escrow='{escrow_id}']")
    browser.logout()


def test_a_pvp_proposed_on_one_console_is_accepted_on_the_other(
    banks: dict[str, BankGateway], browser: Browser
) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    alice = us.open_account("Alice Importers Inc.", "US")
    alice_hkd = hk.open_account("Alice Importers Inc.", "US")
    bob = hk.open_account("Bob Exporters Ltd.", "HK")
    bob_usd = us.open_account("Bob Exporters Ltd.", "HK")
    us.issue(alice.account_id, "USD", "1000.00")
    hk.issue(bob.account_id, "HKD", "10000.00")
    browser.login(us.url, alice.api_key)
    browser.open(f"{us.url}/console/merchant/trades")
    browser.fill({"currency": "USD", "amount": "100.00", "counterparty_bank": "HKBankMSP",
                  "counterparty_account": bob.account_id, "counterparty_receives_at": bob_usd.account_id,
                  "counter_currency": "HKD", "rate": "7.8", "receive_account": alice_hkd.account_id,
                  "expires_in": "30", "expires_unit": "minutes"})  # fmt: skip
    browser.submit_until_not_unavailable("propose")
    assert browser.has("#trade"), browser.refusal()
    pvp_id = browser.driver.current_url.rsplit("/", 1)[1]
    assert browser.find("#trade").get_attribute("data-status") == "proposed"
    assert not browser.has("#accept")
    browser.logout()

    browser.login(hk.url, bob.api_key)
    browser.open(f"{hk.url}/console/merchant/trades/{pvp_id}")
    assert "780.00 HKD" in browser.text("#acceptor-leg")
    browser.screenshot("merchant-pvp-offer")
    browser.submit_until_not_unavailable("accept")
    assert "Offer accepted" in browser.text(".flash"), browser.refusal()
    browser.logout()

    browser.login(us.url, alice.api_key)

    def settled() -> bool:
        browser.open(f"{us.url}/console/merchant/trades/{pvp_id}")
        return browser.find("#trade").get_attribute("data-status") == "settled"

    wait_for(settled, timeout=TIMEOUT, interval=2)
    steps = [step.get_attribute("class") for step in browser.find_all("#trade .timeline li")]
    assert steps[0] == "step step-proposed" and steps[-1] == "step step-settled", steps
    browser.screenshot("merchant-pvp-settled")
    assert us.balances(bob_usd) == {"USD": "100.00"} and hk.balances(alice_hkd) == {"HKD": "780.00"}
    assert us.balances(alice) == {"USD": "900.00"} and hk.balances(bob) == {"HKD": "9220.00"}
    browser.logout()


def test_operator_sees_the_positions_chart_and_settles_a_cycle(
    banks: dict[str, BankGateway], browser: Browser, buyer_key: str
) -> None:
    us = banks["USBankMSP"]
    browser.login(us.url, _operator_key(us))
    assert browser.has("#positions-chart")
    browser.open(f"{us.url}/console/operator/positions")
    # Chart.js drew the chart from the page's figures: the library's own record of it has data
    drawn = browser.wait(
        lambda d: d.execute_script(
            "const c = window.Chart && Chart.getChart(document.getElementById('positions-chart'));"
            "return c ? {datasets: c.data.datasets.length, bars: c.getDatasetMeta(0).data.length,"
            " labels: c.data.labels} : null;"
        )
    )
    assert drawn["datasets"] >= 1 and drawn["bars"] >= 2 and "HKBankMSP" in drawn["labels"], drawn
    assert browser.csp_violations() == []
    browser.screenshot("operator-positions")
    browser.open(f"{us.url}/console/operator/payments")
    browser.screenshot("operator-payments")
    browser.open(f"{us.url}/console/operator/")
    browser.screenshot("operator-home")

    browser.open(f"{us.url}/console/operator/settlement")
    browser.submit_until_not_unavailable("open-cycle")
    assert browser.has("#confirm-form"), browser.refusal() or browser.driver.page_source[:2000]
    cycle_id = browser.driver.current_url.rsplit("/", 1)[1]
    members = [row.get_attribute("data-bank") for row in browser.find_all("#confirmations tr[data-bank]")]
    assert "USBankMSP" in members and "HKBankMSP" in members, members
    browser.logout()
    # each bank of the cycle confirms its own leg, in its own console, with its own operator key
    for msp_id in members:
        bank = banks[msp_id]
        browser.login(bank.url, _operator_key(bank))
        browser.open(f"{bank.url}/console/operator/settlement/{cycle_id}")
        if browser.has("#external_ref"):
            browser.fill({"external_ref": unique("RTGS")})
            browser.submit_until_not_unavailable("confirm-cycle")
            assert "leg of cycle" in browser.text(".flash"), browser.refusal()
        browser.logout()
    browser.login(us.url, _operator_key(us))
    browser.open(f"{us.url}/console/operator/settlement/{cycle_id}")
    assert browser.text("#cycle-status") == "settled"
    assert not browser.has("#confirm-form")
    browser.screenshot("operator-cycle-settled")
    browser.logout()


@pytest.fixture(scope="module")
def regulator(network: dict[str, Any]) -> BankGateway:
    org = network["orgs"][REG]
    gateway = BankGateway(REG, org["gateway_url"], Path(org["operator_key_file"]))
    assert wait_for(gateway.ready, timeout=120), "the regulator's gateway is not ready"
    return gateway


def test_a_bank_operators_key_is_refused_at_the_regulators_console(
    banks: dict[str, BankGateway], regulator: BankGateway, browser: Browser
) -> None:
    browser.open(f"{regulator.url}/console/login")
    browser.fill({"api_key": _operator_key(banks["USBankMSP"])})
    browser.submit("login")
    assert "401 unauthenticated" in browser.refusal() and not browser.has("#logout")
    browser.screenshot("regulator-login-refused")
    # and the regulator's key at a bank's console
    us = banks["USBankMSP"]
    browser.open(f"{us.url}/console/login")
    browser.fill({"api_key": _operator_key(regulator)})
    browser.submit("login")
    assert "401 unauthenticated" in browser.refusal() and not browser.has("#logout")


def test_the_regulator_watches_supply_flows_payments_alerts_and_files_a_disclosure_request(
    banks: dict[str, BankGateway], regulator: BankGateway, browser: Browser
) -> None:
    us, hk = banks["USBankMSP"], banks["HKBankMSP"]
    rule_url = f"{regulator.url}/v1/alert-rules/large_payment"
    put = requests.put(rule_url, json={"enabled": True, "thresholds": {"USD": "250.00"}}, headers=regulator.op,
                       timeout=TIMEOUT)  # fmt: skip
    assert put.status_code == 200, put.text
    try:
        payment_id = _paid_and_seen(us, hk, regulator, "300.00")
        alert_id = _alert_for(regulator, payment_id)
    finally:
        restored = requests.put(rule_url, json={"enabled": True, "thresholds": {}}, headers=regulator.op,
                                timeout=TIMEOUT)  # fmt: skip
        assert restored.status_code == 200, restored.text

    browser.login(regulator.url, _operator_key(regulator))
    FIGURES["regulator_home"] = _home_figures(browser, f"{regulator.url}/console/regulator/")
    assert int(browser.text("#open-alerts")) >= 1
    assert _operator_key(regulator) not in browser.driver.page_source
    assert browser.storage() == {"local": 0, "session": 0, "cookies": ""}
    browser.screenshot("regulator-home")

    # supply over time: a line per token class with a supply, drawn by Chart.js with its points
    browser.open(f"{regulator.url}/console/regulator/supply?interval=minute")
    drawn = _drawn(browser, "supply-chart-1")
    assert drawn["datasets"] == 1 and drawn["points"] >= 2, drawn
    browser.screenshot("regulator-supply")

    # flows between banks over the last hour: USBank → HKBank has a bar in USD
    browser.open(f"{regulator.url}/console/regulator/flows?range=hour")
    drawn = _drawn(browser, "flows-chart")
    assert "USBankMSP → HKBankMSP" in drawn["labels"] and "USD" in drawn["series"], drawn
    browser.screenshot("regulator-flows")

    # payments with the API's filters, then the one paid above with its timeline
    browser.open(f"{regulator.url}/console/regulator/payments")
    browser.fill({"filter-payer_bank": "USBankMSP", "filter-payee_bank": "HKBankMSP", "filter-status": "completed",
                  "filter-currency": "USD", "filter-min_amount": "300.00", "filter-max_amount": "300.00"})  # fmt: skip
    browser.submit("filter")
    rows = [row.get_attribute("data-payment") for row in browser.find_all("#payments tr[data-payment]")]
    assert payment_id in rows, (rows, browser.refusal())
    browser.screenshot("regulator-payments")
    browser.find(f"tr[data-payment='{payment_id}'] a").click()
    browser.wait(lambda d: d.current_url.endswith(payment_id))
    steps = [step.get_attribute("class") for step in browser.find_all("#payment .timeline li")]
    assert steps == ["step step-initiated", "step step-completed"], steps
    browser.screenshot("regulator-payment")

    # the alert the payment raised: its evidence names the payment; acknowledged with a note
    browser.open(f"{regulator.url}/console/regulator/alerts?rule=large_payment")
    assert browser.has(f"tr[data-alert='{alert_id}']")
    browser.screenshot("regulator-alerts")
    browser.open(f"{regulator.url}/console/regulator/alerts/{alert_id}")
    assert payment_id in browser.text(".evidence")
    browser.fill({"note": "Checked with USBank: a known supplier payment"})
    browser.submit("acknowledge")
    assert browser.text(".flash") == "Alert acknowledged.", browser.refusal()
    assert browser.text("#ack-note") == "Checked with USBank: a known supplier payment"

    # a disclosure request for that payment, filed from its page and listed
    browser.open(f"{regulator.url}/console/regulator/payments/{payment_id}")
    browser.find("#request-disclosure").click()
    browser.wait(lambda d: "/disclosures" in d.current_url)
    assert browser.find("#payment_id").get_attribute("value") == payment_id
    browser.fill({"legal_basis": "Banking Ordinance s.55, console inquiry"})
    browser.submit_until_not_unavailable("file-request")
    assert "asked to answer" in browser.text(".flash"), browser.refusal()
    assert browser.text("#legal-basis") == "Banking Ordinance s.55, console inquiry"
    browser.screenshot("regulator-disclosure")
    browser.open(f"{regulator.url}/console/regulator/disclosures")
    assert browser.has(f"#disclosures tr[data-payment='{payment_id}']")

    # a request for a payment the ledger does not have: the API's reason, and nothing filed
    before = len(browser.find_all("#disclosures tr[data-request]"))
    browser.fill({"payment_id": "0" * 64, "legal_basis": "Banking Ordinance s.55, console inquiry"})
    browser.submit_until_not_unavailable("file-request")
    words = browser.refusal()
    assert "404" in words and "Nothing was changed" in words, words
    browser.screenshot("regulator-disclosure-refused")
    assert len(browser.find_all("#disclosures tr[data-request]")) == before
    assert browser.csp_violations() == []
    browser.logout()


def _paid_and_seen(us: BankGateway, hk: BankGateway, regulator: BankGateway, amount: str) -> str:
    """A USD payment from a buyer at USBank to a seller at HKBank, waited for until the regulator sees it completed."""
    buyer = us.open_account("Regulator Console Buyer", "US")
    us.issue(buyer.account_id, "USD", "1000.00")
    seller = hk.open_account("Regulator Console Seller", "HK")
    response = us.pay(buyer, "HKBankMSP", seller.account_id, "USD", amount, unique("reg-console"))
    assert response.status_code == 201, response.text
    payment_id: str = response.json()["payment_id"]

    def completed() -> bool:
        seen = regulator.get(f"/v1/payments/{payment_id}")
        return seen.status_code == 200 and seen.json()["status"] == "completed"

    assert wait_for(completed, timeout=180, interval=0.5), f"payment {payment_id} never showed completed"
    return payment_id


def _alert_for(regulator: BankGateway, payment_id: str) -> str:
    """The large-payment alert the regulator's monitor raised for the payment."""

    def raised() -> str | None:
        found = regulator.get("/v1/alerts", params={"rule": "large_payment", "state": "open"})
        for alert in found.json()["alerts"] if found.status_code == 200 else []:
            if payment_id in alert["evidence"].get("payment_ids", []):
                return str(alert["alert_id"])
        return None

    alert_id = wait_for(raised, timeout=120, interval=0.5)
    assert alert_id, f"no large_payment alert for {payment_id}"
    return str(alert_id)


def _drawn(browser: Browser, canvas_id: str) -> dict[str, Any]:
    """What Chart.js drew on the canvas, from the library's own record of the chart."""
    drawn: dict[str, Any] = browser.wait(
        lambda d: d.execute_script(
            "const c = window.Chart && Chart.getChart(document.getElementById(arguments[0]));"
            "return c ? {datasets: c.data.datasets.length, points: c.getDatasetMeta(0).data.length,"
            " labels: c.data.labels, series: c.data.datasets.map(s => s.label)} : null;",
            canvas_id,
        )
    )
    return drawn


def _operator_key(bank: BankGateway) -> str:
    return bank.op["Authorization"].removeprefix("Bearer ")


def _home_figures(browser: Browser, url: str) -> dict[str, Any]:
    """A home page loaded afresh: its bytes and when it was first drawn (figures, not limits)."""
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    samples = []
    for _ in range(3):
        browser.open(url)
        samples.append(browser.timings())
    browser.driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    last = samples[-1]
    weight = last["html_bytes"] + sum(item["bytes"] for item in last["resources"])
    return {
        "page_bytes": weight,
        "html_bytes": last["html_bytes"],
        "resources": {item["name"].rsplit("/", 1)[1]: item["bytes"] for item in last["resources"]},
        "first_contentful_paint_ms": [round(s["first_contentful_paint_ms"] or 0, 1) for s in samples],
        "response_end_ms": [round(s["response_end_ms"], 1) for s in samples],
        "load_ms": [round(s["load_ms"], 1) for s in samples],
    }
