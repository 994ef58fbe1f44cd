"""Every console page through Flask's test client on the fake network: what it shows, what its forms do,
and that a refused action shows the API's reason and changes nothing."""

from __future__ import annotations

import json
import re

import pytest

from gateway.bank_api.console import ASSET_FILES, ASSETS_DIR
from gateway.bank_api.console.api import ApiRefused
from gateway.bank_api.console.operator import payments_chart, positions_chart
from gateway.bank_api.console.pages import key_after
from tests.unit.bank_api.conftest import Gateway, ledger_snapshot
from tests.unit.bank_api.console_support import Console, refusal, tags, text


@pytest.fixture
def merchant(us: Gateway, seeded: tuple[str, str]) -> Console:
    console = Console(us)
    console.login(seeded[1])
    return console


@pytest.fixture
def operator(us: Gateway) -> Console:
    console = Console(us)
    console.login(us.operator_key)
    return console


def _pay(console: Console, **fields: str) -> dict[str, str]:
    console.get("/console/merchant/pay")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', text(console.last)).group(1)  # type: ignore[arg-type, union-attr]
    return {"payee_currency": "", "remittance": "", "idempotency_key": key, **fields}


def _chart(page_text: str, canvas_id: str) -> dict[str, object]:
    found = re.search(rf"<canvas id=\"{canvas_id}\" data-chart='([^']*)'", page_text)
    assert found, f"no chart {canvas_id}"
    return dict(json.loads(found.group(1).replace("&#39;", "'")))


# --- login and roles --------------------------------------------------------------------------


def test_login_sends_each_role_home(us: Gateway, seeded: tuple[str, str]) -> None:
    console = Console(us)
    assert console.get("/console/").headers["Location"] == "/console/login"
    home = console.login(seeded[1])
    assert home.status_code == 200 and "Balances" in text(home)
    assert console.get("/console/").headers["Location"] == "/console/merchant/"
    operator = Console(us)
    assert "Net positions" in text(operator.login(us.operator_key))


def test_a_page_of_another_role_is_refused_in_words(merchant: Console, operator: Console) -> None:
    refused = merchant.get("/console/operator/payments")
    assert refused.status_code == 403 and "these pages are for operator keys" in refusal(refused)
    assert operator.get("/console/merchant/").status_code == 403


# --- merchant ---------------------------------------------------------------------------------


def test_merchant_home_shows_balances_per_currency_and_latest_entries(us: Gateway, seeded: tuple[str, str]) -> None:
    account, key = seeded
    us.issue(account, "3.50", currency="USD", ref="dep-2")
    console = Console(us)
    home = text(console.login(key))
    assert re.search(r'data-currency="USD"><td>USD</td><td class="num"><span class="money">103.50', home)
    assert "dep-seed" in home and "dep-2" in home
    assert "Payer Co" in home and account in home


def test_merchant_history_pages(us: Gateway, seeded: tuple[str, str]) -> None:
    account, key = seeded
    for n in range(25):
        us.issue(account, "1.00", ref=f"dep-page-{n}")
    console = Console(us)
    console.login(key)
    first = text(console.get("/console/merchant/history"))
    assert first.count("<tr>") == 21  # header + 20 entries
    next_link = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_link
    second = text(console.get(next_link.group(1).replace("&amp;", "&")))
    assert second.count("<tr>") == 1 + 26 - 20 and "First page" in second
    assert 'rel="next"' not in second


def test_merchant_pays_another_merchant_of_the_bank(us: Gateway, merchant: Console) -> None:
    payee, _ = us.open_account("Payee Co")
    fields = _pay(merchant, payee_bank="USBankMSP", payee_account=payee, currency="USD", amount="12.50",
                  remittance="INV-1")  # fmt: skip
    review = merchant.post("/console/merchant/pay/review", fields)
    assert review.status_code == 200 and "Confirm and pay" in text(review)
    assert us.ledger.network.balance("USBankMSP", payee, "USD") == 0  # reviewing pays nothing
    paid = merchant.post("/console/merchant/pay", {**fields, "quoted_rate": ""})
    assert paid.status_code == 303
    page = merchant.follow(paid)
    assert "completed" in text(page) and "INV-1" in text(page)
    assert us.ledger.network.balance("USBankMSP", payee, "USD") == 1250
    # the same form sent again (a double click, a reload) pays once
    merchant.get("/console/merchant/pay")
    assert merchant.post("/console/merchant/pay", {**fields, "quoted_rate": ""}).status_code == 303
    assert us.ledger.network.balance("USBankMSP", payee, "USD") == 1250


def test_merchant_pays_another_bank_in_another_currency_after_seeing_the_rate(
    us: Gateway, hk: Gateway, merchant: Console
) -> None:
    supplier, _ = hk.open_account("Supplier", "HK")
    fields = _pay(merchant, payee_bank="HKBankMSP", payee_account=supplier, currency="USD", amount="10.00",
                  payee_currency="HKD")  # fmt: skip
    review = merchant.post("/console/merchant/pay/review", fields)
    shown = text(review)
    assert "1 USD = 7.8 HKD" in shown
    assert re.search(r'id="payee-amount"><span class="money">78.00 <abbr>HKD', shown)
    assert 'name="quoted_rate" value="7.8"' in shown
    assert not us.ledger.network.payments  # nothing paid before the confirmation
    paid = merchant.post("/console/merchant/pay", {**fields, "quoted_rate": "7.8"})
    page = merchant.follow(paid)
    payment_id = paid.headers["Location"].rsplit("/", 1)[1]
    record = us.ledger.network.payments[payment_id]
    assert (record["rate"], record["payee_amount"], record["status"]) == ("7.8", 7800, "initiated")
    assert 'data-status="initiated"' in text(page) and "updates by itself" in text(page)
    hk.ledger.complete_payment(payment_id)
    done = text(merchant.get(f"/console/merchant/payments/{payment_id}"))
    assert 'data-status="completed"' in done
    assert re.findall(r'<li class="step step-(\w+)">', done) == ["initiated", "completed"]


def test_a_changed_rate_is_shown_again_before_paying(us: Gateway, hk: Gateway, merchant: Console) -> None:
    supplier, _ = hk.open_account("Supplier", "HK")
    fields = _pay(merchant, payee_bank="HKBankMSP", payee_account=supplier, currency="USD", amount="10.00",
                  payee_currency="HKD")  # fmt: skip
    merchant.post("/console/merchant/pay/review", fields)
    response = merchant.post("/console/merchant/pay", {**fields, "quoted_rate": "7.7"})
    assert response.status_code == 409
    assert "the rate changed from 7.7 to 7.8" in refusal(response)
    assert 'name="quoted_rate" value="7.8"' in text(response)
    assert not us.ledger.network.payments


def test_a_refused_payment_shows_the_api_s_reason_and_changes_nothing(us: Gateway, merchant: Console) -> None:
    payee, _ = us.open_account("Payee Co")
    before = ledger_snapshot(us)
    too_much = _pay(merchant, payee_bank="USBankMSP", payee_account=payee, currency="USD", amount="100.01")
    merchant.post("/console/merchant/pay/review", too_much)
    response = merchant.post("/console/merchant/pay", {**too_much, "quoted_rate": ""})
    assert response.status_code == 409
    words = refusal(response)
    assert "insufficient_funds" in words and "Nothing was changed" in words
    bad_amount = _pay(merchant, payee_bank="USBankMSP", payee_account=payee, currency="USD", amount="1.001")
    response = merchant.post("/console/merchant/pay", {**bad_amount, "quoted_rate": ""})
    assert response.status_code == 400 and "amount has more than 2 decimal places" in refusal(response)
    missing = merchant.post("/console/merchant/pay/review", _pay(merchant, payee_bank="USBankMSP", currency="USD"))
    assert missing.status_code == 400 and "payee_account, amount are required" in refusal(missing)
    assert 'name="payee_bank"' in text(missing)  # the form again, to fix
    unsupported = _pay(merchant, payee_bank="HKBankMSP", payee_account="x1", currency="USD", amount="1.00",
                       payee_currency="XAU")  # fmt: skip
    response = merchant.post("/console/merchant/pay/review", unsupported)
    assert response.status_code == 400 and "XAU is not used on this network" in refusal(response)
    assert ledger_snapshot(us) == before


def test_a_form_corrected_after_a_refusal_goes_through(us: Gateway, merchant: Console, operator: Console) -> None:
    payee, _ = us.open_account("Payee Co")
    fields = _pay(merchant, payee_bank="USBankMSP", payee_account=payee, currency="USD", amount="500.00")
    refused = merchant.post("/console/merchant/pay", {**fields, "quoted_rate": ""})
    assert refused.status_code == 409
    # the API keeps this refusal under the form's key; the form shown again carries a fresh one
    key = re.search(r'name="idempotency_key" value="([^"]+)"', text(refused)).group(1)  # type: ignore[union-attr]
    assert key != fields["idempotency_key"]
    corrected = merchant.post("/console/merchant/pay", {**fields, "amount": "50.00", "idempotency_key": key})
    assert corrected.status_code == 303
    assert us.ledger.network.balance("USBankMSP", payee, "USD") == 5000
    operator.get("/console/operator/accounts")
    first = {"holder": "", "jurisdiction": "US", "kyc_ref": "K-1", "idempotency_key": "open-x"}
    assert operator.post("/console/operator/accounts", first).status_code == 400
    again = operator.post("/console/operator/accounts", {**first, "holder": "Fixed Ltd", "idempotency_key": "open-x-2"})
    assert again.status_code == 201


def test_a_form_shown_again_keeps_its_key_only_while_the_outcome_is_unknown() -> None:
    for status, code, kept in (
        (503, "ordering_unavailable", True),
        (502, "ledger_error", True),
        (409, "idempotency_in_progress", True),
        (409, "insufficient_funds", False),
        (400, "invalid_amount", False),
        (429, "rate_limited", False),
    ):
        after = key_after(ApiRefused(status, code, "words"), "console-first")
        assert (after == "console-first") is kept, code
        assert after.startswith("console-")


def test_merchant_webhooks_add_list_deliveries_and_remove(us: Gateway, merchant: Console) -> None:
    page = merchant.get("/console/merchant/webhooks")
    assert page.status_code == 200 and "No webhooks." in text(page)
    refused = merchant.post("/console/merchant/webhooks", {"url": "ftp://example.com/x"})
    assert refused.status_code == 400 and "http" in refusal(refused)
    created = merchant.post(
        "/console/merchant/webhooks", {"url": "https://hooks.example.com/bank", "events": ["payment.received"]}
    )
    assert created.status_code == 201
    body = text(created)
    assert "hooks.example.com/bank" in body and "shown this once" in body
    webhook_id = re.search(r'href="/console/merchant/webhooks/([A-Za-z0-9_-]+)"', body).group(1)  # type: ignore[union-attr]
    listing = text(merchant.get("/console/merchant/webhooks"))
    assert "shown this once" not in listing and "payment.received" in listing
    deliveries = merchant.get(f"/console/merchant/webhooks/{webhook_id}")
    assert deliveries.status_code == 200 and "Nothing delivered yet." in text(deliveries)
    assert merchant.get("/console/merchant/webhooks/nosuchhook").status_code == 404
    merchant.get("/console/merchant/webhooks")
    removed = merchant.post(f"/console/merchant/webhooks/{webhook_id}/delete")
    assert removed.status_code == 303
    assert "No webhooks." in text(merchant.follow(removed))


def test_malformed_ids_in_console_urls_are_4xx(merchant: Console, operator: Console) -> None:
    assert merchant.get("/console/merchant/payments/..%2Fsupply").status_code in (400, 404)
    assert merchant.get("/console/merchant/payments/a%20b").status_code == 400
    assert operator.get("/console/operator/accounts/-x").status_code == 400
    assert operator.get("/console/operator/settlement/..").status_code == 400
    assert operator.get("/console/operator/nope").status_code == 404
    assert "Not found" in text(operator.last)  # type: ignore[arg-type]


# --- operator ---------------------------------------------------------------------------------


def test_operator_opens_finds_and_manages_an_account(us: Gateway, operator: Console) -> None:
    operator.get("/console/operator/accounts")
    opened = operator.post(
        "/console/operator/accounts",
        {"holder": "Harbour Traders", "jurisdiction": "US", "kyc_ref": "KYC-77", "idempotency_key": "open-1"},
    )
    assert opened.status_code == 201
    account_id = re.search(r'id="opened-account" href="/console/operator/accounts/([^"]+)"', text(opened)).group(1)  # type: ignore[union-attr]
    key = re.search(r'id="merchant-key">([^<]+)<', text(opened)).group(1)  # type: ignore[union-attr]
    assert us.services.keys.verify(key) is not None
    found = operator.get(f"/console/operator/accounts/find?account_id={account_id}")
    assert found.headers["Location"] == f"/console/operator/accounts/{account_id}"
    page = text(operator.follow(found))
    assert "Harbour Traders" in page and key not in page  # the key is shown once, on the answer to opening
    missing = operator.get("/console/operator/accounts/find?account_id=acc_nobody")
    assert missing.status_code == 404 and "acc_nobody" in text(missing)

    operator.get(f"/console/operator/accounts/{account_id}")
    no_reason = operator.post(f"/console/operator/accounts/{account_id}/freeze", {"reason": ""})
    assert no_reason.status_code == 400 and "reason" in refusal(no_reason)
    assert us.ledger.network.accounts["USBankMSP"][account_id]["status"] == "active"
    frozen = operator.post(f"/console/operator/accounts/{account_id}/freeze", {"reason": "AML review"})
    assert "status-frozen" in text(operator.follow(frozen))
    assert us.ledger.network.accounts["USBankMSP"][account_id]["status"] == "frozen"
    unfrozen = operator.post(f"/console/operator/accounts/{account_id}/unfreeze")
    assert "status-active" in text(operator.follow(unfrozen))

    bad_limit = operator.post(
        f"/console/operator/accounts/{account_id}/limits", {"currency": "USD", "per_transaction": "ten", "daily": ""}
    )
    assert bad_limit.status_code == 400 and "per_transaction" in refusal(bad_limit)
    limited = operator.post(
        f"/console/operator/accounts/{account_id}/limits", {"currency": "USD", "per_transaction": "50.00", "daily": ""}
    )
    page = text(operator.follow(limited))
    assert re.search(r"<td>USD</td><td class=\"num\">50.00</td><td class=\"num\">none</td>", page)

    made = operator.post(f"/console/operator/accounts/{account_id}/api-keys", {"label": "second"})
    assert made.status_code == 201
    second_key = re.search(r'id="new-key">([^<]+)<', text(made)).group(1)  # type: ignore[union-attr]
    second_id = second_key.split("_")[1]
    revoked = operator.post(f"/console/operator/accounts/{account_id}/api-keys/{second_id}/revoke")
    assert revoked.status_code == 303 and us.services.keys.verify(second_key) is None
    operator.get(f"/console/operator/accounts/{account_id}")
    again = operator.post(f"/console/operator/accounts/{account_id}/api-keys/nosuchkey/revoke")
    assert again.status_code == 404 and "no API key with that id" in refusal(again)


def test_operator_issues_and_redeems_and_a_refusal_changes_nothing(
    us: Gateway, operator: Console, seeded: tuple[str, str]
) -> None:
    account, _ = seeded
    operator.get(f"/console/operator/money?account_id={account}")
    assert f'value="{account}"' in text(operator.last)  # type: ignore[arg-type]
    issued = operator.post(
        "/console/operator/issue",
        {"account_id": account, "currency": "USD", "amount": "250.00", "reference": "core-9", "idempotency_key": ""},
    )
    page = text(operator.follow(issued))
    assert "Issued 250.00 USD" in page and "350.00" in page
    operator.get("/console/operator/money")
    repeated = operator.post(
        "/console/operator/issue",
        {"account_id": account, "currency": "USD", "amount": "250.00", "reference": "core-9", "idempotency_key": ""},
    )
    assert "nothing issued again" in text(operator.follow(repeated))
    assert us.ledger.network.balance("USBankMSP", account, "USD") == 35000
    before = ledger_snapshot(us)
    operator.get("/console/operator/money")
    too_much = operator.post(
        "/console/operator/redeem",
        {"account_id": account, "currency": "USD", "amount": "999.00", "reference": "wd-1", "idempotency_key": ""},
    )
    assert too_much.status_code == 409 and "insufficient_funds" in refusal(too_much)
    assert 'value="999.00"' in text(too_much)  # the form keeps what was typed
    unknown = operator.post(
        "/console/operator/issue",
        {"account_id": "acc_nobody", "currency": "USD", "amount": "1.00", "reference": "d-2", "idempotency_key": ""},
    )
    assert unknown.status_code == 404 and "unknown_account" in refusal(unknown)
    assert ledger_snapshot(us) == before
    redeemed = operator.post(
        "/console/operator/redeem",
        {"account_id": account, "currency": "USD", "amount": "50.00", "reference": "wd-2", "idempotency_key": ""},
    )
    assert "Redeemed 50.00 USD" in text(operator.follow(redeemed))


def _interbank(us: Gateway, hk: Gateway, key: str, amount: str, idem: str) -> str:
    supplier, _ = hk.open_account("Supplier", "HK")
    response = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": amount},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
    )
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["payment_id"])


def test_operator_sees_payments_with_status_and_a_chart(
    us: Gateway, hk: Gateway, operator: Console, seeded: tuple[str, str]
) -> None:
    _, key = seeded
    done = _interbank(us, hk, key, "20.00", "p1")
    hk.ledger.complete_payment(done)
    waiting = _interbank(us, hk, key, "5.00", "p2")
    page = text(operator.get("/console/operator/payments"))
    assert done[:18] in page and waiting[:18] in page
    chart = _chart(page, "payments-chart")
    assert chart["labels"] == ["USD"]
    assert {s["label"]: s["values"] for s in chart["series"]} == {  # type: ignore[attr-defined]
        "initiated": ["5.00"],
        "completed": ["20.00"],
    }
    filtered = text(operator.get("/console/operator/payments?status=completed"))
    assert done[:18] in filtered and waiting[:18] not in filtered
    bad = operator.get("/console/operator/payments?status=lost")
    assert bad.status_code == 400 and "status must be one of" in refusal(bad)
    detail = text(operator.get(f"/console/operator/payments/{done}"))
    assert 'data-status="completed"' in detail and "HKBankMSP" in detail


def test_operator_positions_chart_and_settlement_cycle_confirmed(
    us: Gateway, hk: Gateway, operator: Console, seeded: tuple[str, str]
) -> None:
    _, key = seeded
    payment_id = _interbank(us, hk, key, "30.00", "s1")
    hk.ledger.complete_payment(payment_id)
    home = text(operator.get("/console/operator/"))
    chart = _chart(home, "positions-chart")
    assert chart["labels"] == ["HKBankMSP", "USBankMSP"]
    assert chart["series"] == [{"label": "USD", "values": ["30.00", "-30.00"]}]
    positions = text(operator.get("/console/operator/positions"))
    assert "-30.00" in positions and _chart(positions, "positions-chart") == chart

    operator.get("/console/operator/settlement")
    opened = operator.post("/console/operator/settlement", {"idempotency_key": "cycle-1"})
    assert opened.status_code == 303
    cycle_page = operator.follow(opened)
    cycle_id = opened.headers["Location"].rsplit("/", 1)[1]
    assert "over 1 payment(s)" in text(cycle_page)
    bad_ref = operator.post(f"/console/operator/settlement/{cycle_id}/confirm", {"external_ref": "bad ref!"})
    assert bad_ref.status_code == 400 and "external_ref" in refusal(bad_ref)
    confirmed = operator.post(f"/console/operator/settlement/{cycle_id}/confirm", {"external_ref": "RTGS-1"})
    page = text(operator.follow(confirmed))
    assert "Your bank&#39;s leg" in page and re.search(r'data-bank="USBankMSP">.*?status-confirmed', page)
    # HKBank confirms its leg through its own gateway: the cycle is settled
    hk.client.post(f"/v1/settlement-cycles/{cycle_id}/confirmation", json={"external_ref": "RTGS-1"}, headers=hk.op())
    settled = text(operator.get(f"/console/operator/settlement/{cycle_id}"))
    assert 'id="cycle-status"><span class="status status-settled">' in settled
    assert "Confirm this bank" not in settled
    listing = text(operator.get("/console/operator/settlement"))
    assert cycle_id in listing


def test_chart_data_keeps_the_api_s_decimal_strings() -> None:
    chart = positions_chart({"A": {"USD": "1.10", "JPY": "-5"}, "B": {"USD": "-1.10", "JPY": "5"}})
    assert chart["series"] == [
        {"label": "JPY", "values": ["-5", "5"]},
        {"label": "USD", "values": ["1.10", "-1.10"]},
    ]
    stacked = payments_chart(
        [{"status": "completed", "currency": "USD", "amount": "0.10"}, {"status": "completed", "currency": "USD",
          "amount": "0.20"}]
    )  # fmt: skip
    assert stacked["series"] == [{"label": "completed", "values": ["0.30"]}]  # exact, no float sum


def test_the_chart_library_is_served_by_the_gateway_to_pages_with_a_chart(
    us: Gateway, hk: Gateway, operator: Console, seeded: tuple[str, str]
) -> None:
    empty = operator.get("/console/operator/")
    assert 'id="no-positions"' in text(empty) and "<canvas" not in text(empty)
    assert [attrs["src"] for tag, attrs in tags(empty) if tag == "script"] == ["/console/static/console.js"]
    hk.ledger.complete_payment(_interbank(us, hk, seeded[1], "1.00", "lib-1"))
    home = operator.get("/console/operator/")
    scripts = [attrs["src"] for tag, attrs in tags(home) if tag == "script"]
    if not (ASSETS_DIR / ASSET_FILES["chart.umd.min.js"]).is_file():
        pytest.skip("the chart library is not installed (make console-assets)")
    assert scripts == ["/console/assets/chart.umd.min.js", "/console/static/console.js"]
    library = operator.get("/console/assets/chart.umd.min.js")
    assert library.status_code == 200 and b"Chart" in library.data
    assert operator.get("/console/assets/..%2F..%2Fpackage.json").status_code == 404
    assert operator.get("/console/assets/chart.js").status_code == 404


def test_times_are_shown_to_the_second_in_utc(us: Gateway, seeded: tuple[str, str]) -> None:
    console = Console(us)
    home = text(console.login(seeded[1]))
    shown = re.search(r'<time datetime="([^"]+)">([^<]+)</time>', home)
    assert shown, home
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown.group(2))
    assert shown.group(1).startswith(shown.group(2)[:10])
