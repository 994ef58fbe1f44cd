"""Webhook targets: no request forgery towards the gateway, loopback, private or metadata addresses."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bank_api.egress import EgressPolicy, EgressRefused, IPAddress, forbidden_reason, parse_url
from gateway.bank_api.storage.models import WebhookDelivery
from gateway.bank_api.webhooks import WebhookSender, enqueue
from tests.unit.bank_api.conftest import Gateway, GatewayFactory
from tests.unit.bank_api.receiver import Receiver

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/",
    "http://127.0.0.1./",
    "http://127.255.255.254:8080/",
    "http://2130706433/",  # decimal integer
    "http://017700000001/",  # octal integer
    "http://0x7f000001/",  # hex integer
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
]
PRIVATE_AND_SPECIAL = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",  # another cloud metadata address
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
]
MALFORMED = [
    "http://[::1/",
    "http://[::1]x/",
    "http://[zz::1]/",
    "http://[fe80::1%25eth0]/",
    "http://example.com:99999/",
    "http://example.com:-1/",
    "http://example.com:0/",
    "http://example.com:/",
    "http://example.com:\uff18\uff10/",  # fullwidth digits
    "http://example.com:80:80/",
    "http://user:pass@example.com/",
    "http://@example.com/",
    "http://exa mple.com/",
    "http://example.com\\@127.0.0.1/",
    "http://example.com/\n",
    "http://exämple.com/",
    "http://under_score.example/",
    "http:///path",
    "http:example.com",
    "ftp://example.com/",
    "javascript:alert(1)",
    "//example.com/",
    "http://example.com/#frag",
    "https://" + "a" * 300 + ".com/",
]
PUBLIC = ["http://93.184.215.14/hook", "https://8.8.8.8:8443/h?x=1", "http://[2606:4700::1111]/"]


def _policy(*allowed: str, own: tuple[str, int] = ("127.0.0.1", 7103), **kwargs: Any) -> EgressPolicy:
    return EgressPolicy(allowed=allowed, own=own, **kwargs)


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS + PRIVATE_AND_SPECIAL + MALFORMED)
def test_refused_without_an_allow_list(url: str) -> None:
    with pytest.raises(EgressRefused):
        _policy().check_url(url)


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_pass(url: str) -> None:
    target = _policy().resolve(url)
    assert target.address is not None and forbidden_reason(target.address) is None


def test_allow_list_opens_named_networks_only() -> None:
    policy = _policy("127.0.0.1", "10.0.0.0/8")
    assert policy.check_url("http://127.0.0.1:9000/hook").port == 9000
    assert policy.check_url("http://10.9.8.7/").host == "10.9.8.7"
    assert policy.check_url("http://[::ffff:127.0.0.1]:9000/").port == 9000
    for url in ("http://127.0.0.2/", "http://169.254.169.254/", "http://192.168.1.1/", "http://2130706433/"):
        with pytest.raises(EgressRefused):
            policy.check_url(url)


@pytest.mark.parametrize(
    ("own", "url"),
    [
        (("127.0.0.1", 7103), "http://127.0.0.1:7103/v1/payments"),
        (("127.0.0.1", 7103), "http://[::ffff:127.0.0.1]:7103/"),
        (("0.0.0.0", 7103), "http://127.0.0.1:7103/"),
        (("localhost", 7103), "http://127.0.0.1:7103/"),
    ],
)
def test_the_gateway_itself_is_refused_even_when_allow_listed(own: tuple[str, int], url: str) -> None:
    with pytest.raises(EgressRefused, match="this gateway"):
        _policy("127.0.0.0/8", own=own).check_url(url)


def test_names_are_checked_on_what_they_resolve_to() -> None:
    answers: dict[str, list[IPAddress]] = {"evil.example": [ipaddress.ip_address("127.0.0.1")]}
    policy = _policy(resolver=lambda host, port: answers[host])
    policy.check_url("http://evil.example/")  # the name alone looks harmless
    with pytest.raises(EgressRefused, match="loopback"):
        policy.resolve("http://evil.example/")
    answers["evil.example"] = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.1")]
    with pytest.raises(EgressRefused, match="private"):  # every address counts, not only the first
        policy.resolve("http://evil.example/")


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses())
def test_every_special_address_is_refused_in_its_literal_form(address: IPAddress) -> None:
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"http://{host}:8080/"
    if forbidden_reason(address) is None:
        assert address.is_global and not address.is_multicast
        assert _policy().check_url(url).port == 8080
    else:
        with pytest.raises(EgressRefused):
            _policy().check_url(url)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_checked_target_or_a_refusal(text: str) -> None:
    for url in (text, f"http://{text}/", f"http://example.com:{text}/", f"http://[{text}]/"):
        try:
            target = parse_url(url)
        except EgressRefused:
            continue
        assert target.scheme in ("http", "https")
        assert 1 <= target.port <= 65535
        assert target.path.startswith("/")


# --- through the API and the sender -------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://2130706433/", "http://[::1]/", "http://169.254.169.254/", *MALFORMED[:6]]
)
def test_registration_refuses_forbidden_targets(us: Gateway, url: str) -> None:
    _, key = us.open_account("Hooked")
    response = us.client.post("/v1/webhooks", json={"url": url}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "invalid_request"
    assert us.client.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}"}).get_json()["webhooks"] == []


def test_registration_refuses_the_gateway_itself(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway("USBankMSP", webhook_allowed_targets=("127.0.0.1",), port=7103)
    _, key = gateway.open_account("Hooked")
    headers = {"Authorization": f"Bearer {key}"}
    refused = gateway.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:7103/v1/me"}, headers=headers)
    assert refused.status_code == 400
    assert "this gateway" in refused.get_json()["detail"]
    assert (
        gateway.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:7104/"}, headers=headers).status_code == 201
    )


def _deliver_once(gateway: Gateway, url: str, policy: EgressPolicy) -> WebhookDelivery:
    account, _ = gateway.open_account("Hooked")
    from gateway.bank_api.webhooks import WebhookStore

    public = EgressPolicy(allowed=("0.0.0.0/0",), resolver=lambda host, port: [ipaddress.ip_address("93.184.215.14")])
    WebhookStore(gateway.services.db, policy=public).subscribe(account, url, ["payment.completed"])
    with gateway.services.db.session() as session:
        assert enqueue(session, account, "payment.completed", "evt-1", {"payment_id": "p"}) == 1
    WebhookSender(gateway.services.db, timeout_seconds=2, max_attempts=3, policy=policy).send_due()
    with gateway.services.db.session(write=False) as session:
        return session.query(WebhookDelivery).one()


def test_delivery_checks_the_address_again(us: Gateway, receiver: Receiver) -> None:
    # Registered while the name pointed somewhere public; by delivery time it points at loopback.
    rebinding = EgressPolicy(resolver=lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    row = _deliver_once(us, f"http://rebind.example:{receiver.port}/hook", rebinding)
    assert row.state == "pending" and row.last_status_code is None
    assert row.last_error is not None and "loopback" in row.last_error
    assert receiver.hits == []


def test_delivery_connects_to_the_address_it_checked(us: Gateway, receiver: Receiver) -> None:
    # The name does not resolve on this machine: the request can only arrive through the pinned address.
    pinned = EgressPolicy(allowed=("127.0.0.1",), resolver=lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    row = _deliver_once(us, f"http://hooks.invalid:{receiver.port}/hook", pinned)
    assert (row.state, row.last_status_code) == ("delivered", 204)
    assert receiver.hits == ["/hook"]


def test_delivery_does_not_follow_redirects(us: Gateway) -> None:
    target = Receiver()
    redirector = Receiver(302, location=f"http://127.0.0.1:{target.port}/stolen")
    try:
        row = _deliver_once(us, f"http://127.0.0.1:{redirector.port}/hook", EgressPolicy(allowed=("127.0.0.1",)))
        assert row.last_status_code == 302 and row.state == "pending"
        assert row.last_error is not None and "redirects are not followed" in row.last_error
        assert redirector.hits == ["/hook"] and target.hits == []
    finally:
        target.close()
        redirector.close()


def test_system_resolver_gives_addresses() -> None:
    from gateway.bank_api.egress import system_resolver

    try:
        addresses = system_resolver("localhost", 80)
    except socket.gaierror:
        pytest.skip("no resolver for localhost here")
    assert addresses and all(a.is_loopback for a in addresses)
