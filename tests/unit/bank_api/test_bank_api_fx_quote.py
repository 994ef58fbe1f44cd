"""GET /v1/fx-quote: the rate and payee amount a cross-currency payment would lock."""

from __future__ import annotations

from tests.unit.bank_api.conftest import Gateway


def _merchant(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_quote_is_what_the_payment_then_locks(us: Gateway, hk: Gateway, seeded: tuple[str, str]) -> None:
    _, key = seeded
    supplier, _ = hk.open_account("Supplier", "HK")
    quote = us.client.get(
        "/v1/fx-quote?currency=USD&amount=12.34&payee_currency=HKD", headers=_merchant(key)
    ).get_json()
    assert quote == {
        "currency": "USD",
        "amount": "12.34",
        "payee_currency": "HKD",
        "payee_amount": "96.25",  # 12.34 x 7.8 = 96.252, half-even to cents
        "rate": "7.8",
    }
    paid = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "12.34",
              "payee_currency": "HKD"},
        headers={**_merchant(key), "Idempotency-Key": "q-1"},
    ).get_json()  # fmt: skip
    assert (paid["rate"], paid["payee_amount"]) == (quote["rate"], quote["payee_amount"])


def test_quotes_for_operators_crosses_and_one_currency(us: Gateway) -> None:
    cross = us.client.get("/v1/fx-quote?currency=HKD&amount=100.00&payee_currency=JPY", headers=us.op())
    assert cross.status_code == 200
    body = cross.get_json()
    assert body["payee_currency"] == "JPY" and "." not in body["payee_amount"]  # JPY has no minor unit
    same = us.client.get("/v1/fx-quote?currency=USD&amount=5&payee_currency=USD", headers=us.op()).get_json()
    assert (same["amount"], same["payee_amount"], same["rate"]) == ("5.00", "5.00", "1")


def test_bad_quote_requests_are_4xx_in_words(us: Gateway) -> None:
    cases = {
        "currency=USD&amount=1.00": "payee_currency is required",
        "currency=USD&amount=1.001&payee_currency=HKD": "more than 2 decimal places",
        "currency=usd&amount=1.00&payee_currency=HKD": "currency is malformed",
        "currency=XAU&amount=1.00&payee_currency=HKD": "not used on this network",
        "currency=USD&amount=-1&payee_currency=HKD": "must be positive",
        "currency=USD&amount=1.00&payee_currency=XAU": "not used on this network",
    }
    for query, words in cases.items():
        response = us.client.get(f"/v1/fx-quote?{query}", headers=us.op())
        assert response.status_code == 400, query
        assert words in response.get_json()["detail"], (query, response.get_json())
    assert us.client.get("/v1/fx-quote?currency=USD&amount=1&payee_currency=HKD").status_code == 401
