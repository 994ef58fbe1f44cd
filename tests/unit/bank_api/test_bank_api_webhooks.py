"""Webhooks: registration, signed deliveries, retries with backoff, delivery listing."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from gateway.bank_api.storage.models import WebhookDelivery, utcnow
from gateway.bank_api.webhooks import SIGNATURE_HEADER, WebhookSender, backoff_seconds, sign, verify
from gateway.bank_api.workers import PaymentFollower
from tests.unit.bank_api.conftest import Gateway, GatewayFactory
from tests.unit.bank_api.fake_ledger import stop_when
from tests.unit.bank_api.receiver import Receiver


@pytest.fixture
def us(make_gateway: GatewayFactory) -> Gateway:
    # The receivers of these tests listen on loopback, which only an allow-list opens.
    return make_gateway("USBankMSP", webhook_allowed_targets=("127.0.0.1",))


@pytest.fixture
def hk(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway("HKBankMSP", webhook_allowed_targets=("127.0.0.1",))


def _merchant(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"id":"x"}'
    header = sign("whsec_secret", 1_700_000_000, body)
    assert verify("whsec_secret", header, body, now=1_700_000_010)
    assert not verify("whsec_secret", header, body + b" ", now=1_700_000_010)
    assert not verify("whsec_other", header, body, now=1_700_000_010)
    assert not verify("whsec_secret", header, body, now=1_700_000_000 + 3600)  # replayed later


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff_seconds(n) for n in range(1, 15)]
    assert delays == sorted(delays)
    assert delays[0] == 2 and delays[-1] == 3600


def test_payment_received_is_delivered_signed(us: Gateway, hk: Gateway, receiver: Receiver) -> None:
    buyer, buyer_key = us.open_account("Buyer")
    supplier, supplier_key = hk.open_account("Supplier", "HK")
    created = hk.client.post("/v1/webhooks", json={"url": receiver.url}, headers=_merchant(supplier_key))
    assert created.status_code == 201
    subscription = created.get_json()
    assert subscription["secret"].startswith("whsec_")
    assert "secret" not in hk.client.get("/v1/webhooks", headers=_merchant(supplier_key)).get_json()["webhooks"][0]
    us.issue(buyer, "10.00")
    payment = us.client.post(
        "/v1/payments",
        json={"payee_bank": "HKBankMSP", "payee_account": supplier, "currency": "USD", "amount": "2.50"},
        headers={**_merchant(buyer_key), "Idempotency-Key": "w1"},
    ).get_json()
    follower = PaymentFollower(hk.services)
    for _ in range(2):  # every event, then all of them again (a replay after a crash)
        for event in list(us.ledger.network.events):
            follower.handle_with_retries(event)
    sender = WebhookSender(hk.services.db, timeout_seconds=5, max_attempts=3, policy=hk.services.egress)
    assert sender.send_due() == 1
    assert sender.send_due() == 0  # delivered once, even though the events were replayed
    headers, body = receiver.requests[0]
    assert verify(subscription["secret"], headers[SIGNATURE_HEADER], body, now=int(time.time()))
    event = json.loads(body)
    assert event["type"] == "payment.received"
    assert event["data"]["payment_id"] == payment["payment_id"]
    assert event["data"]["payee_amount"] == "2.50"
    deliveries = hk.client.get(
        f"/v1/webhooks/{subscription['id']}/deliveries", headers=_merchant(supplier_key)
    ).get_json()["deliveries"]
    assert [(d["state"], d["attempts"], d["last_status_code"]) for d in deliveries] == [("delivered", 1, 204)]


def test_failed_delivery_is_retried_with_backoff_then_given_up(us: Gateway, receiver: Receiver) -> None:
    account, key = us.open_account("Merchant")
    subscription = us.client.post("/v1/webhooks", json={"url": receiver.url}, headers=_merchant(key)).get_json()
    from gateway.bank_api.webhooks import enqueue

    with us.services.db.session() as session:
        assert enqueue(session, account, "payment.completed", "evt-1", {"payment_id": "p"}) == 1
    receiver.fail_next = 10
    sender = WebhookSender(us.services.db, timeout_seconds=5, max_attempts=3, policy=us.services.egress)
    assert sender.send_due() == 1
    assert sender.send_due() == 0  # not due again before its backoff
    with us.services.db.session(write=False) as session:
        row = session.query(WebhookDelivery).one()
        assert (row.state, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.next_attempt_at > utcnow()
    later = utcnow() + timedelta(hours=2)
    sender.send_due(now=later)
    sender.send_due(now=later + timedelta(hours=2))
    listed = us.client.get(f"/v1/webhooks/{subscription['id']}/deliveries", headers=_merchant(key)).get_json()
    assert [(d["state"], d["attempts"]) for d in listed["deliveries"]] == [("failed", 3)]
    assert receiver.requests == []


def test_webhooks_are_per_account(us: Gateway) -> None:
    _, key_a = us.open_account("A")
    _, key_b = us.open_account("B")
    hook = us.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=_merchant(key_a)).get_json()
    assert us.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=_merchant(key_b)).status_code == 404
    assert us.client.delete(f"/v1/webhooks/{hook['id']}", headers=_merchant(key_b)).status_code == 404
    assert us.client.delete(f"/v1/webhooks/{hook['id']}", headers=_merchant(key_a)).status_code == 204
    assert us.client.get("/v1/webhooks", headers=_merchant(key_a)).get_json() == {"webhooks": []}


def test_a_stalled_receiver_delays_no_other_merchant(us: Gateway, receiver: Receiver) -> None:
    from gateway.bank_api.webhooks import enqueue

    slow = Receiver()
    slow.stall = threading.Event()
    try:
        slow_account, slow_key = us.open_account("Slow Merchant")
        fast_account, fast_key = us.open_account("Fast Merchant")
        us.client.post("/v1/webhooks", json={"url": slow.url}, headers=_merchant(slow_key))
        us.client.post("/v1/webhooks", json={"url": receiver.url}, headers=_merchant(fast_key))
        with us.services.db.session() as session:
            enqueue(session, slow_account, "payment.completed", "evt-slow", {"payment_id": "p1"})
        sender = WebhookSender(us.services.db, timeout_seconds=30, max_attempts=3, policy=us.services.egress)
        sender.start()
        try:
            assert stop_when(lambda: len(slow.hits) == 1)  # in flight, and it will not answer
            with us.services.db.session() as session:
                for n in range(3):
                    enqueue(session, fast_account, "payment.completed", f"evt-fast-{n}", {"payment_id": f"f{n}"})
            assert stop_when(lambda: len(receiver.requests) == 3)
            assert slow.requests == []  # still waiting on the stalled receiver
            slow.stall.set()
            assert stop_when(lambda: len(slow.requests) == 1)
        finally:
            slow.stall.set()
            sender.stop()
    finally:
        slow.close()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"url": 5}, "url must be a string"),
        ({"url": "   "}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": "payment.received"}, "events must be a list"),
        ({"url": "http://127.0.0.1:9/x", "events": []}, "events must be a non-empty list drawn from payment.received"),
        ({"url": "http://127.0.0.1:9/x", "events": ["payment.sent"]}, "events must be a non-empty list drawn from"),
        ({"url": "http://127.0.0.1:9/x", "events": [1]}, "events[0] must be a string"),
        ({"url": "http://127.0.0.1:9/x", "secret": "mine"}, "unknown field(s): secret"),
    ],
)
def test_a_subscription_of_the_wrong_shape_is_refused_by_name(
    us: Gateway, body: dict[str, object], detail: str
) -> None:
    _, key = us.open_account("A")
    response = us.client.post("/v1/webhooks", json=body, headers=_merchant(key))
    assert response.status_code == 400 and detail in response.get_json()["detail"], response.get_json()
    assert us.client.get("/v1/webhooks", headers=_merchant(key)).get_json() == {"webhooks": []}


def test_events_left_out_or_null_mean_every_event(us: Gateway) -> None:
    from gateway.bank_api.webhooks import EVENT_TYPES

    _, key = us.open_account("A")
    hook = us.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": None}, headers=_merchant(key))
    assert hook.status_code == 201 and sorted(hook.get_json()["events"]) == sorted(EVENT_TYPES), hook.get_json()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page_size": "7_0"}, "page_size"),  # a number to int(), not on the wire
        ({"page_size": " 7"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1.5"}, "page_size"),
        ({"cursor": ""}, "cursor is malformed: pass next_cursor of the previous page as it is"),
        ({"cursor": "wd_1/2"}, "cursor is malformed"),
    ],
)
def test_a_deliveries_query_of_the_wrong_shape_is_refused_by_name(
    us: Gateway, query: dict[str, str], field: str
) -> None:
    _, key = us.open_account("A")
    hook = us.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=_merchant(key)).get_json()
    response = us.client.get(f"/v1/webhooks/{hook['id']}/deliveries", query_string=query, headers=_merchant(key))
    assert response.status_code == 400 and field in response.get_json()["detail"], response.get_json()
    ok = us.client.get(f"/v1/webhooks/{hook['id']}/deliveries", query_string={"page_size": "5"}, headers=_merchant(key))
    assert ok.status_code == 200 and ok.get_json() == {"deliveries": [], "next_cursor": None}


def test_a_group_completion_event_tells_of_each_payment_it_lists(us: Gateway) -> None:
    """A CompletePayments transaction has one event listing its payments (decision 0037): each one
    this bank takes part in gets the notification a PaymentCompleted of its own would have."""
    from gateway.bank_api.ledger import LedgerEvent
    from gateway.bank_api.workers import NOTIFY, TaskSpec

    follower = PaymentFollower(us.services)
    listed = [
        {"payment_id": "a" * 64, "payer_bank": "USBankMSP", "payee_bank": "HKBankMSP"},
        {"payment_id": "b" * 64, "payer_bank": "SGBankMSP", "payee_bank": "HKBankMSP"},  # not ours
        {"payment_id": "c" * 64, "payer_bank": "USBankMSP", "payee_bank": "HKBankMSP"},
        "not a payment",
    ]
    event = LedgerEvent(7, "tx7", "PaymentsCompleted", {"payee_bank": "HKBankMSP", "payments": listed})
    assert follower.concerns_us(event)
    assert follower.tasks_for(event) == []  # no merchant subscribed: nothing to tell
    _, key = us.open_account("A")
    us.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=_merchant(key))
    assert follower.tasks_for(event) == [
        TaskSpec(NOTIFY, "a" * 64, "PaymentCompleted"),
        TaskSpec(NOTIFY, "c" * 64, "PaymentCompleted"),
    ]
    # The same task a PaymentCompleted of one of them asks for: a replay of either is not done twice.
    single = LedgerEvent(8, "tx8", "PaymentCompleted", listed[0])  # type: ignore[arg-type]
    assert follower.tasks_for(single)[0].key == follower.tasks_for(event)[0].key
    others = LedgerEvent(9, "tx9", "PaymentsCompleted", {"payments": [listed[1]]})
    assert not follower.concerns_us(others) and follower.tasks_for(others) == []
    for malformed in ({"payments": "x"}, {}, {"payments": [{"payment_id": 5, "payer_bank": "USBankMSP"}]}):
        assert follower.tasks_for(LedgerEvent(10, "tx10", "PaymentsCompleted", malformed)) == []
