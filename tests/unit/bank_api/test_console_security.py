"""The console's security properties: session cookie, CSRF, CSP and escaping, the API's authorisation."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from gateway.bank_api.app import create_app
from gateway.bank_api.console import CONTENT_SECURITY_POLICY
from gateway.bank_api.console.cookie_session import load_secret
from tests.unit.bank_api.conftest import Gateway, GatewayFactory, ledger_snapshot
from tests.unit.bank_api.console_support import Console, refusal, tags, text


def _pay_form(payee: str, amount: str = "10.00", **extra: str) -> dict[str, str]:
    return {
        "payee_bank": "USBankMSP",
        "payee_account": payee,
        "currency": "USD",
        "amount": amount,
        "payee_currency": "",
        "remittance": "",
        "idempotency_key": "console-test-1",
        "quoted_rate": "",
        **extra,
    }


def test_session_cookie_is_encrypted_http_only_secure_strict_and_bound_to_the_console(
    us: Gateway, seeded: tuple[str, str]
) -> None:
    _, key = seeded
    console = Console(us)
    console.get("/console/login")
    response = console.post("/console/login", {"api_key": key})
    assert response.status_code == 303
    header = response.headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "secure"} <= attributes
    assert "SameSite=Strict" in header and "Path=/console" in header
    value = console.cookie().value
    secret = key.split("_", 2)[2]
    assert key not in value and secret not in value
    # Fernet: without the gateway's secret the cookie is opaque, and a changed byte is refused
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(value.encode())


def test_no_page_carries_the_key_or_the_session_secret(us: Gateway, seeded: tuple[str, str]) -> None:
    _, key = seeded
    console = Console(us)
    pages = [console.login(key)]
    for path in ("/console/merchant/history", "/console/merchant/pay", "/console/merchant/webhooks"):
        pages.append(console.get(path))
    secret_file = Path(us.services.config.operator_key_file or "").with_name("console.secret")
    session_secret = secret_file.read_text().strip()
    for page in pages:
        assert page.status_code == 200
        body = text(page)
        assert key not in body and key.split("_", 2)[2] not in body
        assert session_secret not in body
        assert page.headers["Cache-Control"] == "no-store"


def test_every_page_has_the_csp_and_no_inline_script_or_style(us: Gateway, seeded: tuple[str, str]) -> None:
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    merchant = Console(us)
    pages = [merchant.get("/console/login"), merchant.login(seeded[1])]
    operator = Console(us)
    pages.append(operator.login(us.operator_key))
    pages += [operator.get(f"/console/operator/{path}") for path in ("accounts", "payments", "positions", "settlement")]
    for page in pages:
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        for tag, attributes in tags(page):
            if tag == "script":
                assert attributes.get("src", "").startswith("/console/"), attributes  # type: ignore[union-attr]
            assert "style" not in attributes
            assert not [name for name in attributes if name.startswith("on")], (tag, attributes)


def test_forms_without_a_csrf_token_are_refused_and_change_nothing(us: Gateway, seeded: tuple[str, str]) -> None:
    _, key = seeded
    payee, _ = us.open_account("Payee Co")
    console = Console(us)
    console.login(key)
    before = ledger_snapshot(us)
    response = console.client.post("/console/merchant/pay", data=_pay_form(payee))
    assert response.status_code == 400
    assert "csrf_failed" in refusal(response) and "Nothing was changed" in refusal(response)
    # a token from another user's session is no better
    other = Console(us)
    other.get("/console/login")
    foreign = other.token()
    assert console.post("/console/merchant/pay", _pay_form(payee), token=foreign).status_code == 400
    assert console.post("/console/merchant/pay", _pay_form(payee), token="forged").status_code == 400
    assert ledger_snapshot(us) == before
    # with the page's own token the same form pays
    console.get("/console/merchant/pay")
    assert console.post("/console/merchant/pay", _pay_form(payee)).status_code == 303
    assert us.ledger.network.balance("USBankMSP", payee, "USD") == 1000


def test_login_and_logout_need_the_csrf_token_too(us: Gateway) -> None:
    console = Console(us)
    response = console.client.post("/console/login", data={"api_key": us.operator_key})
    assert response.status_code == 400 and "csrf_failed" in refusal(response)
    assert console.get("/console/operator/").status_code == 303  # not logged in
    console.login(us.operator_key)
    assert console.client.post("/console/logout").status_code == 400
    assert console.get("/console/operator/").status_code == 200  # still logged in
    assert console.client.get("/console/logout").status_code == 405  # logout is a form, never a link


def test_logout_ends_the_session(us: Gateway) -> None:
    console = Console(us)
    console.login(us.operator_key)
    response = console.post("/console/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/console/login"
    # what is left in the cookie is the "Logged out." message for the next page, no key
    left = us.app.session_interface._fernet.decrypt(console.cookie().value.encode())  # type: ignore[attr-defined]
    assert set(json.loads(left)) == {"_flashes"}
    page = console.get("/console/operator/")
    assert page.status_code == 303 and page.headers["Location"].startswith("/console/login")


def test_the_api_never_accepts_the_console_cookie(us: Gateway, seeded: tuple[str, str]) -> None:
    account, key = seeded
    console = Console(us)
    console.login(key)
    cookie = console.cookie()
    assert cookie is not None and cookie.path == "/console"
    # even sent along by hand, the cookie authenticates no API call: the API wants a header
    response = console.client.get(f"/v1/accounts/{account}", headers={"Cookie": f"{cookie.key}={cookie.value}"})
    assert response.status_code == 401 and response.get_json()["code"] == "unauthenticated"


def test_a_merchant_sees_only_its_own_account(us: Gateway, hk: Gateway, seeded: tuple[str, str]) -> None:
    payer, payer_key = seeded
    other, other_key = us.open_account("Other Merchant Secretive Ltd")
    us.issue(other, "50.00", ref="dep-other")
    payee, _ = us.open_account("Payee Co")
    # the other merchant pays someone; its payment must stay invisible to the first merchant
    paid = us.client.post(
        "/v1/payments",
        json={"payee_bank": "USBankMSP", "payee_account": payee, "currency": "USD", "amount": "5.00"},
        headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "other-1"},
    ).get_json()
    console = Console(us)
    home = console.login(payer_key)
    assert "Other Merchant Secretive Ltd" not in text(home) and other not in text(home)
    shown = console.get(f"/console/merchant/payments/{paid['payment_id']}")
    assert shown.status_code == 404
    assert "no payment with this id is visible to this API key" in refusal(shown)
    assert other not in text(shown)
    # operator pages, which take an account id, are refused to a merchant whatever the id
    for path in (f"/console/operator/accounts/{other}", f"/console/operator/accounts/{payer}", "/console/operator/"):
        refused = console.get(path)
        assert refused.status_code == 403, path
        assert "Other Merchant" not in text(refused)
    assert console.post(f"/console/operator/accounts/{other}/freeze", {"reason": "x"}).status_code == 403
    assert us.ledger.network.accounts["USBankMSP"][other]["status"] == "active"


def test_a_revoked_key_ends_its_console_session(us: Gateway, seeded: tuple[str, str]) -> None:
    account, key = seeded
    merchant = Console(us)
    merchant.login(key)
    key_id = key.split("_")[1]
    response = us.client.delete(f"/v1/accounts/{account}/api-keys/{key_id}", headers=us.op())
    assert response.status_code == 204
    page = merchant.get("/console/merchant/")
    assert page.status_code == 303 and page.headers["Location"].startswith("/console/login")
    login = merchant.follow(page)
    assert "the API key is unknown or revoked" in text(login)
    assert merchant.get("/console/merchant/").status_code == 303


def test_a_tampered_expired_or_foreign_cookie_is_a_logged_out_visitor(
    us: Gateway, make_gateway: GatewayFactory
) -> None:
    console = Console(us)
    console.login(us.operator_key)
    cookie = console.cookie()
    name, value = cookie.key, cookie.value
    console.client.set_cookie(name, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"), path="/console")
    assert console.get("/console/operator/").status_code == 303
    # a session unused for longer than the idle limit
    interface = us.app.session_interface
    stale = interface._fernet.encrypt_at_time(  # type: ignore[attr-defined]
        json.dumps({"api_key": us.operator_key, "role": "operator"}).encode(),
        int(time.time()) - us.services.config.console_idle_minutes * 60 - 5,
    )
    console.client.set_cookie(name, stale.decode(), path="/console")
    assert console.get("/console/operator/").status_code == 303
    # another bank's console cookie (another secret) does not open this one
    sg = make_gateway("SGBankMSP")
    foreign = Console(sg)
    foreign.login(sg.operator_key)
    console.client.set_cookie(name, foreign.cookie().value, path="/console")
    assert console.get("/console/operator/").status_code == 303


def test_wrong_or_missing_keys_are_refused_in_words(us: Gateway) -> None:
    console = Console(us)
    console.get("/console/login")
    response = console.post("/console/login", {"api_key": "dtk_0123456789abcdef_nope"})
    assert response.status_code == 401 and "the API key is unknown or revoked" in refusal(response)
    console.get("/console/login")
    assert console.post("/console/login", {"api_key": ""}).status_code == 400
    assert console.get("/console/operator/").status_code == 303


def test_login_goes_back_only_to_a_console_page(us: Gateway) -> None:
    console = Console(us)
    console.get("/console/login")
    for target in ("https://evil.example/", "//evil.example/console/", "/v1/supply", "/console/logout"):
        console.get("/console/login")
        response = console.post("/console/login", {"api_key": us.operator_key, "next": target})
        assert response.headers["Location"] == "/console/operator/", target
        console.post("/console/logout")
    page = console.get("/console/operator/positions")
    assert page.headers["Location"] == "/console/login?next=/console/operator/positions"
    console.get(page.headers["Location"])
    response = console.post("/console/login", {"api_key": us.operator_key, "next": "/console/operator/positions"})
    assert response.headers["Location"] == "/console/operator/positions"


def test_values_are_escaped(us: Gateway) -> None:
    console = Console(us)
    console.login(us.operator_key)
    console.get("/console/operator/accounts")
    holder = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    opened = console.post(
        "/console/operator/accounts",
        {"holder": holder, "jurisdiction": "US", "kyc_ref": "KYC-9", "idempotency_key": ""},
    )
    assert opened.status_code == 201
    assert holder not in text(opened)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in text(opened)
    assert not [attrs for tag, attrs in tags(opened) if tag == "img"]


def test_the_session_secret_is_made_once_private_and_shared_by_the_bank_s_processes(tmp_path: Path) -> None:
    path = tmp_path / "gateway" / "console.secret"
    first = load_secret(path)
    assert len(first) == 32 and load_secret(path) == first
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_secret(None) != load_secret(None)  # no file: one per process
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        load_secret(path)


def test_two_processes_of_one_bank_accept_each_other_s_sessions(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    secret = str(tmp_path / "shared.secret")
    one = make_gateway("USBankMSP", console_secret_file=secret)
    console = Console(one)
    console.login(one.operator_key)
    cookie = console.cookie()
    # a second app over the same database and secret file, as a second gunicorn worker would be
    two = create_app(one.services.config, ledger=one.ledger)
    two.testing = True
    try:
        client = two.test_client()
        client.set_cookie(cookie.key, cookie.value, path="/console")
        assert client.get("/console/operator/").status_code == 200
    finally:
        two.extensions["bank_api"].db.dispose()
