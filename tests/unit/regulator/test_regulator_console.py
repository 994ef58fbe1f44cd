"""The regulator's console pages through Flask's test client, on the contract in memory: what each page
shows, that its forms act through the regulator's API (once), that a refusal shows the API's words and
changes nothing, and that keys do not cross between the regulator's console and a bank's."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

from gateway.bank_api.alerts import RegulatorMonitor
from gateway.bank_api.console.regulator import flow_totals, flows_chart, local_input, rfc3339, supply_chart
from tests.unit.bank_api.console_support import Console, refusal, tags, text
from tests.unit.regulator.conftest import HK, REG, SG, US, Gateway, GatewayFactory, Ledger

DAY = {"from": "2025-01-06T00:00", "to": "2025-01-07T00:00"}
BASIS = "Banking Ordinance s.55, inquiry 2025-031"


def _pay(contract: Ledger, key: str, amount: int, payer_bank: str = US, payer: str = "alice",
         payee_bank: str = HK, payee: str = "shop") -> str:  # fmt: skip
    request = {
        "idempotency_key": key, "payer_account": payer, "payee_bank": payee_bank, "payee_account": payee,
        "currency": "USD", "amount": amount, "pending_credits": contract.pending(payer_bank, payer),
    }  # fmt: skip
    payment_id: str = contract.submit(payer_bank, "InitiatePayment", request)["payment_id"]
    return payment_id


@pytest.fixture
def network(regulator: Gateway, contract: Ledger) -> dict[str, Any]:
    """Three payments (two completed), seen by the regulator's monitor, and one large-payment alert."""
    contract.open(US, "alice", "US")
    contract.open(HK, "shop", "HK")
    contract.open(SG, "sg-shop", "SG")
    contract.issue(US, "alice", 1_000_000)
    put = regulator.client.put("/v1/alert-rules/large_payment", headers=regulator.headers(),
                               json={"enabled": True, "thresholds": {"USD": "500.00"}})  # fmt: skip
    assert put.status_code == 200, put.get_json()
    small = _pay(contract, "p1", 12_345)
    contract.submit(HK, "CompletePayment", {"payment_id": small})
    large = _pay(contract, "p2", 60_000)
    contract.submit(HK, "CompletePayment", {"payment_id": large})
    pending = _pay(contract, "p3", 1_000, payee_bank=SG, payee="sg-shop")
    monitor = RegulatorMonitor(regulator.services, clock=lambda: contract.channel.now, retry_seconds=0.05)
    block, tx_id = monitor.load_checkpoint()
    last = None
    for event in regulator.ledger.events(block, tx_id):
        monitor.handle(event)
        last = event
    assert last is not None
    monitor.save_checkpoint(last)
    [alert] = regulator.ok("/v1/alerts")["alerts"]
    return {"small": small, "large": large, "pending": pending, "alert": alert["alert_id"]}


@pytest.fixture
def console(regulator: Gateway) -> Console:
    browser = Console(regulator)
    browser.login(regulator.operator_key)
    return browser


def _chart(page_text: str, canvas_id: str) -> dict[str, Any]:
    found = re.search(rf"<canvas id=\"{canvas_id}\" data-chart='([^']*)'", page_text)
    assert found, f"no chart {canvas_id}"
    return dict(json.loads(found.group(1).replace("&#39;", "'")))


# --- login: the regulator's key only ------------------------------------------------------------


def test_the_regulator_logs_in_with_its_operator_key_and_sees_the_overview(
    regulator: Gateway, network: dict[str, Any]
) -> None:
    console = Console(regulator)
    home = console.login(regulator.operator_key)
    assert home.status_code == 200
    page = text(home)
    # a completed payment moves supply from the payer's bank's class to the payee's bank's
    assert re.search(r'data-class="HKBankMSP/USD">.*?723\.45', page)
    assert re.search(r'id="open-alerts">1<', page) and re.search(r'id="open-cycles">0<', page)
    assert "payment of 600.00 USD" in page
    assert console.get("/console/").headers["Location"] == "/console/regulator/"
    # no key in the page, no inline script, and the chart library only where a chart is drawn
    assert regulator.operator_key not in page
    assert all(attrs.get("src") for tag, attrs in tags(home) if tag == "script")
    assert "chart.umd.min.js" not in page
    assert "default-src 'none'" in home.headers["Content-Security-Policy"]
    # the regulator's own API answers /v1/me like a bank's
    me = regulator.ok("/v1/me")
    assert (me["role"], me["account_id"], me["bank"]) == ("operator", None, REG)


def test_keys_do_not_cross_between_the_regulator_console_and_a_banks(
    regulator: Gateway, make_gateway: GatewayFactory
) -> None:
    bank = make_gateway(US)
    at_regulator = Console(regulator)
    at_regulator.get("/console/login")
    refused = at_regulator.post("/console/login", {"api_key": bank.operator_key})
    assert refused.status_code == 401 and "401 unauthenticated" in refusal(refused)
    assert at_regulator.get("/console/regulator/").headers["Location"].startswith("/console/login")
    at_bank = Console(bank)
    at_bank.get("/console/login")
    refused = at_bank.post("/console/login", {"api_key": regulator.operator_key})
    assert refused.status_code == 401 and "401 unauthenticated" in refusal(refused)
    # a bank operator's pages are not the regulator's, and the other way round
    operator = Console(bank)
    operator.login(bank.operator_key)
    assert "these pages are for regulator keys" in refusal(operator.get("/console/regulator/alerts"))
    regulator_console = Console(regulator)
    regulator_console.login(regulator.operator_key)
    assert "these pages are for operator keys" in refusal(regulator_console.get("/console/operator/"))


def test_forms_need_their_csrf_token(console: Console, network: dict[str, Any], regulator: Gateway) -> None:
    alert_id = network["alert"]
    console.get(f"/console/regulator/alerts/{alert_id}")
    refused = console.post(f"/console/regulator/alerts/{alert_id}/acknowledge", {"note": "x"}, token="forged")
    assert refused.status_code == 400 and "csrf_failed" in refusal(refused)
    assert regulator.ok(f"/v1/alerts/{alert_id}")["state"] == "open"


# --- supply and flows ---------------------------------------------------------------------------


def test_supply_over_time_is_a_line_per_token_class(console: Console, network: dict[str, Any]) -> None:
    page = console.get("/console/regulator/supply", query_string={"interval": "hour", **DAY})
    assert page.status_code == 200, refusal(page)
    # by default the classes with a supply now, one chart each
    assert 'id="supply-chart-2"' in text(page) and 'id="supply-chart-3"' not in text(page)
    chart = _chart(text(page), "supply-chart-1")
    assert chart["type"] == "line" and chart["labels"][0] == "2025-01-06 00:00"
    assert chart["series"] == [{"label": "HKBankMSP USD", "values": ["0.00", "723.45", "723.45"]}]
    assert "chart.umd.min.js" in text(page)
    # one class chosen; an interval the API does not know is refused in its words
    one = console.get("/console/regulator/supply", query_string={"token_class": "USBankMSP/USD", "interval": "day"})
    assert 'id="supply-chart-1"' in text(one) and 'id="supply-chart-2"' not in text(one)
    assert "token_class is an issuer and a currency" in refusal(
        console.get("/console/regulator/supply", query_string={"token_class": "USD"})
    )
    refused = console.get("/console/regulator/supply", query_string={"interval": "fortnight"})
    assert refused.status_code == 400 and "interval" in refusal(refused)


def test_flows_between_banks_total_each_pair_per_currency(console: Console, network: dict[str, Any]) -> None:
    page = console.get("/console/regulator/flows", query_string=DAY)
    assert page.status_code == 200, refusal(page)
    chart = _chart(text(page), "flows-chart")
    # completed only by default: the payment to SGBank is still initiated
    assert chart["labels"] == [f"{US} → {HK}"]
    assert chart["series"] == [{"label": "USD", "values": ["723.45"]}]
    every = _chart(text(console.get("/console/regulator/flows", query_string={**DAY, "status": ""})), "flows-chart")
    assert every["labels"] == [f"{US} → {HK}", f"{US} → {SG}"]
    assert every["series"] == [{"label": "USD", "values": ["723.45", "10.00"]}]
    # the default range ends now; the channel's payments are older, so nothing to draw
    assert 'id="flows-chart"' not in text(console.get("/console/regulator/flows"))


def test_flows_read_a_bounded_number_of_pages_and_say_so(
    console: Console, network: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.bank_api.console import regulator

    monkeypatch.setattr(regulator, "FLOW_PAGE_SIZE", 1)
    monkeypatch.setattr(regulator, "FLOW_PAGES", 2)
    page = text(console.get("/console/regulator/flows", query_string={**DAY, "status": ""}))
    assert 'id="truncated"' in page and "newest 2 only" in page
    assert 'id="truncated"' not in text(console.get("/console/regulator/flows", query_string=DAY))


def test_flow_totals_are_exact_decimals() -> None:
    payments = [
        {"payer_bank": US, "payee_bank": HK, "currency": "USD", "amount": "0.10"},
        {"payer_bank": US, "payee_bank": HK, "currency": "USD", "amount": "0.20"},
        {"payer_bank": HK, "payee_bank": US, "currency": "HKD", "amount": "1.00"},
        {"payer_bank": HK, "payee_bank": US, "currency": "JPY", "amount": "5"},
    ]
    found = flow_totals(payments)
    assert [(f.payer_bank, f.payee_bank, f.currency, f.payments, f.total) for f in found] == [
        (HK, US, "HKD", 1, Decimal("1.00")), (HK, US, "JPY", 1, Decimal("5")), (US, HK, "USD", 2, Decimal("0.30")),
    ]  # fmt: skip
    chart = flows_chart(found)
    assert chart["series"][2] == {"label": "USD", "values": ["0", "0.30"]}


def test_supply_chart_spans_the_range_and_time_inputs_read_as_utc() -> None:
    history = {"issuer": US, "currency": "USD", "interval": "hour", "from": "2025-01-06T00:00:00.000000Z",
               "to": "2025-01-06T12:00:00.000000Z", "opening_supply": "5.00",
               "points": [{"at": "2025-01-06T09:00:00.000000Z", "supply": "7.50"}]}  # fmt: skip
    chart = supply_chart(history)
    assert chart["labels"] == ["2025-01-06 00:00", "2025-01-06 09:00", "2025-01-06 12:00"]
    assert chart["series"][0]["values"] == ["5.00", "7.50", "7.50"]
    assert rfc3339("2025-01-06T09:00") == "2025-01-06T09:00:00Z"
    assert rfc3339("2025-01-06T09:00:05") == "2025-01-06T09:00:05Z"
    assert rfc3339("yesterday") == "yesterday"  # for the API to refuse in its words
    assert local_input("2025-01-06T09:00:05Z") == "2025-01-06T09:00:05"


# --- payments -----------------------------------------------------------------------------------


def test_payments_with_the_apis_filters_and_one_with_its_timeline(console: Console, network: dict[str, Any]) -> None:
    every = text(console.get("/console/regulator/payments"))
    assert all(f'data-payment="{network[name]}"' in every for name in ("small", "large", "pending"))
    narrowed = console.get("/console/regulator/payments", query_string={
        "payee_bank": HK, "status": "completed", "currency": "USD", "min_amount": "200", "max_amount": "",
        "from": "2025-01-06T00:00", "to": "2025-01-07T00:00:00",
    })  # fmt: skip
    page = text(narrowed)
    assert f'data-payment="{network["large"]}"' in page
    assert network["small"] not in page and network["pending"] not in page
    assert 'value="200"' in page and 'value="2025-01-06T00:00"' in page  # the filters stay in the form
    refused = console.get("/console/regulator/payments", query_string={"min_amount": "1.00"})
    assert refused.status_code == 400 and "min_amount needs currency" in refusal(refused)
    one = console.get(f"/console/regulator/payments/{network['large']}")
    shown = text(one)
    assert 'data-status="completed"' in shown and "step-initiated" in shown and "step-completed" in shown
    assert "600.00" in shown and 'id="details-hash"' in shown
    assert "alice" not in shown and "shop" not in shown  # the public record only
    assert console.get("/console/regulator/payments/not-a-payment").status_code == 400
    assert console.get(f"/console/regulator/payments/{'0' * 64}").status_code == 404


def test_payments_page_through_with_the_filters_kept(
    console: Console, network: dict[str, Any], contract: Ledger
) -> None:
    for n in range(30):
        _pay(contract, f"many-{n}", 100)
    first = text(console.get("/console/regulator/payments", query_string={"payer_bank": US}))
    found = re.search(r'href="(/console/regulator/payments\?[^"]+)" rel="next"', first)
    assert found and "payer_bank=USBankMSP" in found.group(1)
    second = text(console.get(found.group(1).replace("&amp;", "&")))
    assert second.count("data-payment=") == 33 - 25


# --- alerts -------------------------------------------------------------------------------------


def test_an_alert_is_acknowledged_with_a_note_and_an_over_long_note_changes_nothing(
    console: Console, regulator: Gateway, network: dict[str, Any]
) -> None:
    alert_id = network["alert"]
    listed = text(console.get("/console/regulator/alerts", query_string={"rule": "large_payment"}))
    assert f'data-alert="{alert_id}"' in listed and network["large"][:18] in listed
    page = text(console.get(f"/console/regulator/alerts/{alert_id}"))
    assert "threshold" in page and network["large"] in page  # the evidence, with its payment
    refused = console.post(f"/console/regulator/alerts/{alert_id}/acknowledge", {"note": "x" * 201})
    assert refused.status_code == 400 and "note" in refusal(refused) and "Nothing was changed" in refusal(refused)
    assert regulator.ok(f"/v1/alerts/{alert_id}")["state"] == "open"
    acknowledged = console.follow(console.post(f"/console/regulator/alerts/{alert_id}/acknowledge",
                                               {"note": "Known corporate payment <b>"}))  # fmt: skip
    shown = text(acknowledged)
    assert "Alert acknowledged." in shown and "Known corporate payment &lt;b&gt;" in shown
    assert regulator.ok(f"/v1/alerts/{alert_id}")["note"] == "Known corporate payment <b>"
    assert f'data-alert="{alert_id}"' not in text(console.get("/console/regulator/alerts"))  # open ones by default
    assert f'data-alert="{alert_id}"' in text(console.get("/console/regulator/alerts?state=acknowledged"))
    assert console.get("/console/regulator/alerts?rule=nonsense").status_code == 400


# --- disclosure requests ------------------------------------------------------------------------


def _form_key(console: Console) -> str:
    found = re.search(r'name="idempotency_key" value="([^"]+)"', text(console.last))  # type: ignore[arg-type]
    assert found
    return found.group(1)


def test_a_disclosure_request_is_filed_once_listed_and_checked(
    console: Console, regulator: Gateway, make_gateway: GatewayFactory, network: dict[str, Any]
) -> None:
    payment_id = network["large"]
    form = console.get(f"/console/regulator/disclosures?payment_id={payment_id}")
    assert f'value="{payment_id}"' in text(form)  # prefilled from the payment's page
    fields = {"payment_id": payment_id, "legal_basis": BASIS, "idempotency_key": _form_key(console)}
    filed = console.post("/console/regulator/disclosures", fields)
    assert filed.status_code == 303
    request_page = console.follow(filed)
    assert f"{US} and {HK} are asked to answer" in text(request_page) and BASIS in text(request_page)
    request_id = request_page.request.path.rsplit("/", 1)[1]
    # the same form sent again (a double click, a reload) files nothing new
    console.get("/console/regulator/disclosures")
    again = console.follow(console.post("/console/regulator/disclosures", fields))
    assert "nothing was filed again" in text(again)
    assert len(regulator.ok("/v1/disclosure-requests")["requests"]) == 1
    assert f'data-request="{request_id}"' in text(console.get("/console/regulator/disclosures"))
    # USBank approves: its delivery is checked against the payment's public hash
    us = make_gateway(US)
    approved = us.client.post(f"/v1/disclosure-requests/{request_id}/approval", json={}, headers=us.headers())
    assert approved.status_code == 200, approved.get_json()
    checked = text(console.get(f"/console/regulator/disclosures/{request_id}"))
    assert re.search(rf'data-bank="{US}".*?status-verified', checked, re.DOTALL)
    assert re.search(rf'data-bank="{HK}".*?status-pending', checked, re.DOTALL)
    assert "alice" in checked  # the delivered details, on the regulator's page only


def test_a_refused_disclosure_request_shows_the_apis_reason_and_files_nothing(
    console: Console, regulator: Gateway, network: dict[str, Any]
) -> None:
    console.get("/console/regulator/disclosures")
    key = _form_key(console)
    refused = console.post("/console/regulator/disclosures",
                           {"payment_id": "f" * 64, "legal_basis": BASIS, "idempotency_key": key})  # fmt: skip
    assert refused.status_code == 404, refusal(refused)
    assert "404" in refusal(refused) and "Nothing was changed" in refusal(refused)
    assert _form_key(console) != key  # a settled refusal: the corrected form gets a fresh key
    assert 'value="ffff' in text(refused) and BASIS in text(refused)  # what was typed stays
    blank = {"payment_id": network["large"], "legal_basis": "", "idempotency_key": _form_key(console)}
    missing = console.post("/console/regulator/disclosures", blank)
    assert missing.status_code == 400 and "legal_basis" in refusal(missing)
    assert regulator.ok("/v1/disclosure-requests")["requests"] == []
    assert console.get("/console/regulator/disclosures/not-an-id").status_code == 400
