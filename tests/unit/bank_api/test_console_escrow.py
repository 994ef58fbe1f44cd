"""The merchant console's escrow and PvP pages through Flask's test client on the fake network: each form's
happy path, a refusal shown in the API's words with nothing changed, CSRF, and another account's escrow or trade."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from gateway.bank_api.workers import PaymentSweeper
from tests.unit.bank_api.conftest import Gateway, ledger_snapshot
from tests.unit.bank_api.console_support import Console, refusal, text


@pytest.fixture
def buyer(us: Gateway, seeded: tuple[str, str]) -> Console:
    console = Console(us)
    console.login(seeded[1])
    return console


def _snapshot(gateway: Gateway) -> Any:
    network = gateway.ledger.network
    return (ledger_snapshot(gateway), copy.deepcopy((network.escrows, network.pvps, network.history)))


def _key(console: Console, path: str) -> str:
    found = re.search(r'name="idempotency_key" value="([^"]+)"', text(console.get(path)))
    assert found, "no idempotency key on the form"
    return found.group(1)


def _lock_form(console: Console, **fields: str) -> dict[str, str]:
    key = _key(console, "/console/merchant/escrows")
    return {
        "payee_bank": "USBankMSP", "currency": "USD", "amount": "40.00", "release_by": "buyer", "attestor": "",
        "expires_in": "2", "expires_unit": "days", "on_expiry": "refund", "remittance": "", "idempotency_key": key,
        **fields,
    }  # fmt: skip


def _lock(us: Gateway, console: Console, **fields: str) -> str:
    response = console.post("/console/merchant/escrows", _lock_form(console, **fields))
    assert response.status_code == 303, refusal(response) or text(response)[:500]
    escrow_id = response.headers["Location"].rsplit("/", 1)[1]
    assert (us.ledger.msp_id, escrow_id) in us.ledger.network.escrows
    return escrow_id


def _figure(page: str, name: str) -> str:
    found = re.search(rf'id="escrow-{name}"><span class="money">([^ <]+)', page)
    assert found, f"no {name} figure"
    return found.group(1)


# --- escrow -------------------------------------------------------------------------------------


def test_merchant_locks_money_in_escrow_and_finds_it_again(
    us: Gateway, seeded: tuple[str, str], buyer: Console
) -> None:
    seller, _ = us.open_account("Seller Co")
    escrow_id = _lock(us, buyer, payee_account=seller, remittance="PO-7")
    page = text(buyer.get(f"/console/merchant/escrows/{escrow_id}"))
    assert "40.00 USD locked in escrow" in page and 'data-status="open"' in page and "PO-7" in page
    assert (_figure(page, "locked"), _figure(page, "released"), _figure(page, "available")) == (
        "40.00",
        "0.00",
        "40.00",
    )
    assert us.ledger.network.balance("USBankMSP", seller, "USD") == 0
    # The list page finds it through the account's history (the API has no escrow listing).
    listed = text(buyer.get("/console/merchant/escrows"))
    assert f'data-escrow="{escrow_id}"' in listed
    assert buyer.get(f"/console/merchant/escrows?escrow_id={escrow_id}").headers["Location"].endswith(escrow_id)
    assert f'href="/console/merchant/escrows/{escrow_id}" class="escrow-ref"' in text(
        buyer.get("/console/merchant/history")
    )
    # The same form sent again (a double click, a reload) locks once.
    form = _lock_form(buyer, payee_account=seller)
    assert buyer.post("/console/merchant/escrows", form).status_code == 303
    assert buyer.post("/console/merchant/escrows", form).status_code == 303
    assert len(us.ledger.network.escrows) == 2
    assert us.ledger.network.balance("USBankMSP", seeded[0], "USD") == 2000


def test_merchant_releases_part_of_an_escrow_and_sees_the_figures_change(us: Gateway, buyer: Console) -> None:
    seller, _ = us.open_account("Seller Co")
    escrow_id = _lock(us, buyer, payee_account=seller)
    path = f"/console/merchant/escrows/{escrow_id}"
    key = _key(buyer, path)
    released = buyer.post(f"{path}/release", {"amount": "15.00", "release_ref": "", "idempotency_key": key})
    assert released.status_code == 303
    page = text(buyer.follow(released))
    assert "15.00 USD released to" in page
    assert (_figure(page, "released"), _figure(page, "available")) == ("15.00", "25.00")
    assert us.ledger.network.balance("USBankMSP", seller, "USD") == 1500
    # the same release form sent again releases once
    assert buyer.post(f"{path}/release", {"amount": "15.00", "idempotency_key": key}).status_code == 303
    assert us.ledger.network.balance("USBankMSP", seller, "USD") == 1500


def test_release_by_both_says_a_second_approval_is_needed_and_shows_it(us: Gateway, buyer: Console) -> None:
    seller, _ = us.open_account("Seller Co")
    escrow_id = _lock(us, buyer, payee_account=seller, release_by="both", attestor="inspect-co")
    path = f"/console/merchant/escrows/{escrow_id}"
    form_page = text(buyer.get(path))
    assert 'id="second-approval"' in form_page and "inspect-co" in form_page
    key = _key(buyer, path)
    approved = buyer.post(f"{path}/release", {"amount": "10.00", "release_ref": "lot-1", "idempotency_key": key})
    page = text(buyer.follow(approved))
    assert "the attestor must approve too" in page
    row = re.search(r'<table class="approvals" id="approvals">.*?</table>', page, re.DOTALL)
    assert row and "lot-1" in row.group(0) and "<td>buyer</td>" in row.group(0) and "<td>attestor</td>" in row.group(0)
    assert us.ledger.network.balance("USBankMSP", seller, "USD") == 0  # nothing moves on one approval


def test_a_refused_lock_shows_the_api_s_reason_and_changes_nothing(us: Gateway, buyer: Console) -> None:
    seller, _ = us.open_account("Seller Co")
    before = _snapshot(us)
    too_much = buyer.post("/console/merchant/escrows", _lock_form(buyer, payee_account=seller, amount="100.01"))
    assert too_much.status_code == 409 and "insufficient_funds" in refusal(too_much)
    assert "Nothing was changed" in refusal(too_much)
    no_attestor = buyer.post(
        "/console/merchant/escrows", _lock_form(buyer, payee_account=seller, release_by="attestor")
    )
    assert no_attestor.status_code == 400 and "attestor is required when release_by is attestor" in refusal(no_attestor)
    bad_expiry = buyer.post("/console/merchant/escrows", _lock_form(buyer, payee_account=seller, expires_in="soon"))
    assert bad_expiry.status_code == 400 and "expires in must be a whole number" in refusal(bad_expiry)
    # the form comes back filled in, with a fresh key for the corrected attempt
    assert 'value="100.01"' not in text(bad_expiry) and f'value="{seller}"' in text(bad_expiry)
    assert _snapshot(us) == before


def test_a_refused_release_shows_the_api_s_reason_and_changes_nothing(us: Gateway, buyer: Console) -> None:
    seller, _ = us.open_account("Seller Co")
    escrow_id = _lock(us, buyer, payee_account=seller)
    path = f"/console/merchant/escrows/{escrow_id}"
    before = _snapshot(us)
    response = buyer.post(f"{path}/release", {"amount": "40.01", "idempotency_key": _key(buyer, path)})
    assert response.status_code == 409 and "above the 4000 still locked" in refusal(response)
    assert 'id="release-form"' in text(response) and 'value="40.01"' in text(response)
    assert _snapshot(us) == before


def test_escrow_forms_need_the_csrf_token(us: Gateway, buyer: Console) -> None:
    seller, _ = us.open_account("Seller Co")
    before = _snapshot(us)
    response = buyer.post("/console/merchant/escrows", _lock_form(buyer, payee_account=seller), token="")
    assert response.status_code == 400 and "csrf_failed" in refusal(response)
    assert _snapshot(us) == before
    escrow_id = _lock(us, buyer, payee_account=seller)
    before = _snapshot(us)
    path = f"/console/merchant/escrows/{escrow_id}/release"
    response = buyer.post(path, {"amount": "1.00", "idempotency_key": "k-1"}, token="forged")
    assert response.status_code == 400 and "csrf_failed" in refusal(response)
    assert _snapshot(us) == before


def test_a_merchant_cannot_open_or_release_another_account_s_escrow(us: Gateway, buyer: Console) -> None:
    seller, seller_key = us.open_account("Seller Co")
    escrow_id = _lock(us, buyer, payee_account=seller)
    stranger = Console(us)
    stranger.login(us.open_account("Stranger Co")[1])
    shown = stranger.get(f"/console/merchant/escrows/{escrow_id}")
    assert shown.status_code == 404 and "no escrow with this id is visible to this API key" in refusal(shown)
    assert escrow_id not in text(stranger.get("/console/merchant/escrows"))
    before = _snapshot(us)
    refused = stranger.post(
        f"/console/merchant/escrows/{escrow_id}/release", {"amount": "1.00", "idempotency_key": "k"}
    )
    assert refused.status_code == 404 and "no escrow with this id" in refusal(refused)
    # The payee sees the escrow it is paid from, without a release form, and cannot release it either.
    payee = Console(us)
    payee.login(seller_key)
    page = payee.get(f"/console/merchant/escrows/{escrow_id}")
    assert page.status_code == 200 and 'id="release-form"' not in text(page)
    refused = payee.post(f"/console/merchant/escrows/{escrow_id}/release", {"amount": "1.00", "idempotency_key": "k"})
    assert refused.status_code == 403 and "only the buyer or the escrow" in refusal(refused)
    assert _snapshot(us) == before
    malformed = stranger.get("/console/merchant/escrows/not-an-id")
    assert malformed.status_code == 400 and "escrow id is malformed" in refusal(malformed)


# --- payment versus payment ---------------------------------------------------------------------


@pytest.fixture
def parties(us: Gateway, hk: Gateway) -> dict[str, str]:
    """Alice pays USD at USBank and receives HKD at HKBank; Bob the other way round."""
    alice, alice_key = us.open_account("Alice Importer")
    bob_usd, _ = us.open_account("Bob Exporter", "HK")
    bob, bob_key = hk.open_account("Bob Exporter", "HK")
    alice_hkd, _ = hk.open_account("Alice Importer", "US")
    us.issue(alice, "1000.00")
    hk.issue(bob, "10000.00", "HKD")
    return {"alice": alice, "alice_key": alice_key, "bob_usd": bob_usd, "bob": bob, "bob_key": bob_key,
            "alice_hkd": alice_hkd}  # fmt: skip


def _offer(console: Console, parties: dict[str, str], **fields: str) -> dict[str, str]:
    key = _key(console, "/console/merchant/trades")
    return {
        "counterparty_bank": "HKBankMSP", "counterparty_account": parties["bob"],
        "counterparty_receives_at": parties["bob_usd"], "receive_account": parties["alice_hkd"], "currency": "USD",
        "amount": "100.00", "counter_currency": "HKD", "rate": "7.8", "expires_in": "30", "expires_unit": "minutes",
        "idempotency_key": key, **fields,
    }  # fmt: skip


def test_a_trade_proposed_on_one_console_is_accepted_on_the_other(
    us: Gateway, hk: Gateway, parties: dict[str, str]
) -> None:
    alice = Console(us)
    alice.login(parties["alice_key"])
    proposed = alice.post("/console/merchant/trades", _offer(alice, parties))
    assert proposed.status_code == 303, refusal(proposed)
    pvp_id = proposed.headers["Location"].rsplit("/", 1)[1]
    page = text(alice.follow(proposed))
    assert "Offer made: 100.00 USD for 780.00 HKD" in page and 'data-status="proposed"' in page
    assert 'id="accept"' not in page  # the proposer does not answer its own offer
    assert f'data-pvp="{pvp_id}"' in text(alice.get("/console/merchant/trades"))
    bob = Console(hk)
    bob.login(parties["bob_key"])
    assert bob.get(f"/console/merchant/trades?pvp_id={pvp_id}").headers["Location"].endswith(pvp_id)
    offer_page = text(bob.get(f"/console/merchant/trades/{pvp_id}"))
    assert 'id="accept"' in offer_page and 'id="refuse"' in offer_page
    key = re.search(r'name="idempotency_key" value="([^"]+)"', offer_page)  # the accept form's, drawn first
    assert key
    accepted = bob.post(f"/console/merchant/trades/{pvp_id}/accept", {"idempotency_key": key.group(1)})
    assert accepted.status_code == 303, refusal(accepted)
    assert "Offer accepted" in text(bob.follow(accepted))
    PaymentSweeper(us.services).sweep()  # the proposer's bank delivers its leg
    settled = text(alice.get(f"/console/merchant/trades/{pvp_id}"))
    assert 'data-status="settled"' in settled
    steps = re.findall(r'<li class="step step-(\w+)">', settled)
    assert steps[0] == "proposed" and "locked" in steps and steps[-1] == "settled"
    assert us.ledger.network.balance("USBankMSP", parties["bob_usd"], "USD") == 10_000
    assert hk.ledger.network.balance("HKBankMSP", parties["alice_hkd"], "HKD") == 78_000


def test_the_counterparty_refuses_and_a_refused_answer_changes_nothing(
    us: Gateway, hk: Gateway, parties: dict[str, str]
) -> None:
    alice = Console(us)
    alice.login(parties["alice_key"])
    pvp_id = alice.post("/console/merchant/trades", _offer(alice, parties)).headers["Location"].rsplit("/", 1)[1]
    bob = Console(hk)
    bob.login(parties["bob_key"])
    bob.get(f"/console/merchant/trades/{pvp_id}")
    refused = bob.post(f"/console/merchant/trades/{pvp_id}/refuse", {"idempotency_key": "console-refuse-1"})
    assert refused.status_code == 303
    page = text(bob.follow(refused))
    assert 'data-status="refused"' in page and 'id="accept"' not in page
    before = _snapshot(hk)
    late = bob.post(f"/console/merchant/trades/{pvp_id}/accept", {"idempotency_key": "console-accept-1"})
    assert late.status_code == 409 and "the PvP is refused, not proposed" in refusal(late)
    assert _snapshot(hk) == before


def test_a_refused_offer_shows_the_api_s_reason_and_changes_nothing(
    us: Gateway, hk: Gateway, parties: dict[str, str]
) -> None:
    alice = Console(us)
    alice.login(parties["alice_key"])
    before = _snapshot(us)
    same = alice.post("/console/merchant/trades", _offer(alice, parties, counter_currency="USD"))
    assert same.status_code == 400 and "a PvP exchanges two different currencies" in refusal(same)
    rate = alice.post("/console/merchant/trades", _offer(alice, parties, rate="-1"))
    assert rate.status_code == 400 and "rate must be a positive decimal string" in refusal(rate)
    too_much = alice.post("/console/merchant/trades", _offer(alice, parties, amount="1000.01"))
    assert too_much.status_code == 409 and "insufficient_funds" in refusal(too_much)
    assert _snapshot(us) == before
    no_token = alice.post("/console/merchant/trades", _offer(alice, parties), token="")
    assert no_token.status_code == 400 and "csrf_failed" in refusal(no_token)
    assert _snapshot(us) == before


def test_a_merchant_cannot_open_or_answer_another_account_s_trade(
    us: Gateway, hk: Gateway, parties: dict[str, str]
) -> None:
    alice = Console(us)
    alice.login(parties["alice_key"])
    pvp_id = alice.post("/console/merchant/trades", _offer(alice, parties)).headers["Location"].rsplit("/", 1)[1]
    stranger = Console(hk)
    stranger.login(hk.open_account("Stranger Ltd", "HK")[1])
    shown = stranger.get(f"/console/merchant/trades/{pvp_id}")
    assert shown.status_code == 404 and "no PvP with this id is visible to this API key" in refusal(shown)
    before = _snapshot(hk)
    answer = stranger.post(f"/console/merchant/trades/{pvp_id}/accept", {"idempotency_key": "console-x"})
    assert answer.status_code == 404 and "no PvP with this id" in refusal(answer)
    assert _snapshot(hk) == before
    malformed = stranger.get("/console/merchant/trades/NOT-A-TRADE")
    assert malformed.status_code == 400 and "trade id is malformed" in refusal(malformed)
