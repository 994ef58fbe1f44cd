"""Escrow and payment versus payment on the real network, through the banks' REST gateways.

Escrow: released by the buyer (in parts), by an attestor with its own key, by both; at expiry
refunded or released by the gateway's sweeper; a double release refused; locked money racing a
payment of the same account. PvP: both legs complete; a refusal or the expiry refunds; a bank
running altered chaincode cannot have one leg delivered alone. Each issuer's supply equals its
book totals after every test.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.bank_api_support import BankGateway, Merchant, ready_gateways, unique, wait_for
from tests.integration.conftest import ROOT
from tests.integration.deposit_token_support import Consortium, altered_chaincode

pytestmark = pytest.mark.network

US, HK = "USBankMSP", "HKBankMSP"
# The gateways' sweeper passes every 20 s (config.sweep_interval_seconds).
SWEEP_WAIT = 90.0


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    return ready_gateways(network)


@pytest.fixture(scope="module")
def ledger(profile_path: Path) -> Iterator[Consortium]:
    consortium = Consortium(profile_path)
    yield consortium
    consortium.close()


@pytest.fixture(autouse=True)
def conserved(ledger: Consortium) -> Iterator[None]:
    yield
    ledger.assert_conserved_after()


def _lock(bank: BankGateway, buyer: Merchant, payee_bank: str, payee: str, amount: str, **terms: Any) -> Any:
    body = {
        "payee_bank": payee_bank, "payee_account": payee, "currency": "USD", "amount": amount,
        "release_by": "buyer", "expires_in_seconds": 3600, "on_expiry": "refund", **terms,
    }  # fmt: skip
    return bank.post("/v1/escrows", body, {**buyer.headers, "Idempotency-Key": unique("escrow")})


def _release(bank: BankGateway, headers: dict[str, str], escrow_id: str, amount: str, key: str, **extra: Any) -> Any:
    return bank.post(
        f"/v1/escrows/{escrow_id}/release", {"amount": amount, **extra}, {**headers, "Idempotency-Key": key}
    )


def _attestor(bank: BankGateway, attestor_id: str) -> dict[str, str]:
    response = bank.post(f"/v1/attestors/{attestor_id}/api-keys", {"label": "inspection"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def _funded(bank: BankGateway, amount: str) -> Merchant:
    buyer = bank.open_account("Buyer Co", "US")
    bank.issue(buyer.account_id, "USD", amount)
    return buyer


def test_the_buyer_releases_in_parts_and_a_double_release_is_refused(banks: dict[str, BankGateway]) -> None:
    us = banks[US]
    buyer, seller = _funded(us, "100.00"), us.open_account("Seller Co", "US")
    locked = _lock(us, buyer, US, seller.account_id, "80.00")
    assert locked.status_code == 201, locked.text
    escrow = locked.json()
    assert (escrow["status"], escrow["available"]) == ("open", "80.00")
    assert us.balances(buyer)["USD"] == "20.00"  # out of the available balance at once
    first = _release(us, buyer.headers, escrow["escrow_id"], "30.00", unique("rel"))
    assert first.status_code == 200, first.text
    key = unique("rel")
    second = _release(us, buyer.headers, escrow["escrow_id"], "50.00", key)
    assert second.json()["status"] == "released"
    # The same request again is a replay; a new release of a settled escrow is refused.
    replay = _release(us, buyer.headers, escrow["escrow_id"], "50.00", key)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    again = _release(us, buyer.headers, escrow["escrow_id"], "1.00", unique("rel"))
    assert again.status_code == 409 and again.json()["code"] == "invalid_state", again.text
    assert us.balances(seller)["USD"] == "80.00" and us.balances(buyer)["USD"] == "20.00"


def test_the_attestor_releases_to_a_payee_at_another_bank(banks: dict[str, BankGateway]) -> None:
    us, hk = banks[US], banks[HK]
    buyer, supplier = _funded(us, "100.00"), hk.open_account("Supplier Ltd", "HK")
    attestor_id = unique("inspect").lower()
    inspector = _attestor(us, attestor_id)
    escrow = _lock(us, buyer, HK, supplier.account_id, "60.00", release_by="attestor", attestor=attestor_id).json()
    refused = _release(us, buyer.headers, escrow["escrow_id"], "60.00", unique("rel"))
    assert refused.status_code == 403 and refused.json()["code"] == "not_authorized", refused.text
    partly = _release(us, inspector, escrow["escrow_id"], "45.00", unique("rel"))
    assert partly.status_code == 200, partly.text
    payment_id = partly.json()["payment_id"]
    assert payment_id and partly.json()["available"] == "15.00"
    # HKBank's gateway completes the interbank payment the release started, as any other.
    assert wait_for(lambda: us.payment(payment_id)["status"] == "completed", timeout=60)
    assert hk.balances(supplier)["USD"] == "45.00"
    assert us.get(f"/v1/escrows/{escrow['escrow_id']}", inspector).status_code == 200
    # Nothing of the escrow is in the public payment record the other banks see.
    public = banks["SGBankMSP"].get(f"/v1/payments/{payment_id}").json()
    assert buyer.account_id not in str(public) and supplier.account_id not in str(public)


def test_both_must_approve_when_the_terms_say_both(banks: dict[str, BankGateway]) -> None:
    us = banks[US]
    buyer, seller = _funded(us, "50.00"), us.open_account("Seller Co", "US")
    attestor_id = unique("logistics").lower()
    carrier = _attestor(us, attestor_id)
    escrow = _lock(us, buyer, US, seller.account_id, "50.00", release_by="both", attestor=attestor_id).json()
    waiting = _release(us, buyer.headers, escrow["escrow_id"], "50.00", unique("rel"), release_ref="delivery")
    assert waiting.status_code == 200 and waiting.json()["awaiting"] == "attestor", waiting.text
    assert us.balances(seller).get("USD", "0.00") == "0.00"
    done = _release(us, carrier, escrow["escrow_id"], "50.00", unique("rel"), release_ref="delivery")
    assert done.json()["status"] == "released", done.text
    assert us.balances(seller)["USD"] == "50.00"


def test_expiry_refunds_or_releases_without_anyone_acting(banks: dict[str, BankGateway]) -> None:
    us, hk = banks[US], banks[HK]
    buyer, seller = _funded(us, "100.00"), us.open_account("Seller Co", "US")
    supplier = hk.open_account("Supplier Ltd", "HK")
    refund = _lock(us, buyer, US, seller.account_id, "30.00", expires_in_seconds=2).json()
    release = _lock(us, buyer, HK, supplier.account_id, "40.00", expires_in_seconds=2, on_expiry="release").json()
    _release(us, buyer.headers, refund["escrow_id"], "10.00", unique("rel"))

    def status(escrow_id: str) -> str:
        return str(us.get(f"/v1/escrows/{escrow_id}", buyer.headers).json()["status"])

    assert wait_for(lambda: status(refund["escrow_id"]) == "refunded", timeout=SWEEP_WAIT, interval=1)
    assert wait_for(lambda: status(release["escrow_id"]) == "released", timeout=SWEEP_WAIT, interval=1)
    assert wait_for(lambda: hk.balances(supplier).get("USD") == "40.00", timeout=60)
    assert us.balances(buyer)["USD"] == "50.00" and us.balances(seller)["USD"] == "10.00"


def test_locked_money_cannot_pay_anything_else(banks: dict[str, BankGateway]) -> None:
    """Four requests race for 40.00 of a 50.00 balance: two escrows and two payments; one wins."""
    us, hk = banks[US], banks[HK]
    buyer, seller = _funded(us, "50.00"), us.open_account("Seller Co", "US")
    supplier = hk.open_account("Supplier Ltd", "HK")

    def attempt(kind: int) -> requests.Response:
        if kind == 0:
            return _lock(us, buyer, US, seller.account_id, "40.00")
        if kind == 1:
            return _lock(us, buyer, HK, supplier.account_id, "40.00")
        if kind == 2:
            return us.pay(buyer, US, seller.account_id, "USD", "40.00", unique("pay"))
        return us.pay(buyer, HK, supplier.account_id, "USD", "40.00", unique("pay"))

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(attempt, range(4)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201, 409, 409, 409], [answer.text for answer in answers]
    assert all(a.json()["code"] == "insufficient_funds" for a in answers if a.status_code == 409)
    assert us.balances(buyer)["USD"] == "10.00"


def test_bad_escrow_input_is_a_clear_400_and_changes_nothing(banks: dict[str, BankGateway]) -> None:
    us = banks[US]
    buyer, seller = _funded(us, "10.00"), us.open_account("Seller Co", "US")
    bad: list[dict[str, Any]] = [
        {"amount": "1.005"}, {"release_by": "nobody"}, {"expires_in_seconds": -1}, {"currency": "XXX"},
    ]  # fmt: skip
    for terms in bad:
        amount = str(terms.pop("amount", "5.00"))
        answer = _lock(us, buyer, US, seller.account_id, amount, **terms)
        assert answer.status_code == 400 and answer.headers["Content-Type"].startswith("application/problem+json")
    too_much = _lock(us, buyer, US, seller.account_id, "10.01")
    assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_funds"
    assert us.balances(buyer)["USD"] == "10.00"


def test_the_readmes_escrow_example_works_as_written(banks: dict[str, BankGateway]) -> None:
    from tests.integration.test_readme import for_test_network, json_documents, readme_api_block

    section = (ROOT / "README.md").read_text().split("## Escrow", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under 'Escrow'"
    script = for_test_network(readme_api_block() + match.group(1))
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    escrow = [d for d in json_documents(result.stdout) if "escrow_id" in d][-1]
    assert (escrow["status"], escrow["released"], escrow["available"]) == ("open", "60.00", "40.00"), escrow
    assert time.monotonic() - started < 300


# -- payment versus payment -------------------------------------------------------------------------


def _trading_pair(banks: dict[str, BankGateway]) -> dict[str, Merchant]:
    """Alice pays USD at USBank and takes HKD at HKBank; Bob pays HKD at HKBank and takes USD at USBank."""
    us, hk = banks[US], banks[HK]
    parties = {
        "alice": us.open_account("Alice Importer", "US"),
        "bob_usd": us.open_account("Bob Exporter", "HK"),
        "bob": hk.open_account("Bob Exporter", "HK"),
        "alice_hkd": hk.open_account("Alice Importer", "US"),
    }
    us.issue(parties["alice"].account_id, "USD", "1000.00")
    hk.issue(parties["bob"].account_id, "HKD", "10000.00")
    return parties


def _offer(banks: dict[str, BankGateway], parties: dict[str, Merchant], seconds: int = 600) -> dict[str, Any]:
    body = {
        "counterparty_bank": HK, "counterparty_account": parties["bob"].account_id,
        "counterparty_receives_at": parties["bob_usd"].account_id,
        "receive_account": parties["alice_hkd"].account_id, "currency": "USD", "amount": "100.00",
        "counter_currency": "HKD", "rate": "7.8", "expires_in_seconds": seconds,
    }  # fmt: skip
    response = banks[US].post("/v1/pvp", body, {**parties["alice"].headers, "Idempotency-Key": unique("fx")})
    assert response.status_code == 201, response.text
    offer: dict[str, Any] = response.json()
    assert (offer["status"], offer["counter_amount"]) == ("proposed", "780.00")
    return offer


def _pvp_status(bank: BankGateway, pvp_id: str) -> str:
    return str(bank.get(f"/v1/pvp/{pvp_id}").json()["status"])


def test_pvp_both_legs_complete(banks: dict[str, BankGateway]) -> None:
    us, hk = banks[US], banks[HK]
    parties = _trading_pair(banks)
    started = time.monotonic()
    offer = _offer(banks, parties)
    assert us.balances(parties["alice"])["USD"] == "900.00"  # the proposer's leg is locked
    # Only the named counterparty accepts, with its own key at its own bank.
    stranger = hk.open_account("Stranger", "HK")
    path = f"/v1/pvp/{offer['pvp_id']}"
    assert hk.post(f"{path}/accept", {}, {**stranger.headers, "Idempotency-Key": unique("a")}).status_code == 404
    accepted = hk.post(f"{path}/accept", {}, {**parties["bob"].headers, "Idempotency-Key": unique("a")})
    assert accepted.status_code == 200, accepted.text
    assert wait_for(lambda: _pvp_status(us, offer["pvp_id"]) == "settled", timeout=60, interval=0.1)
    elapsed = time.monotonic() - started
    assert us.balances(parties["bob_usd"])["USD"] == "100.00"
    assert hk.balances(parties["alice_hkd"])["HKD"] == "780.00"
    assert hk.balances(parties["bob"])["HKD"] == "9220.00"
    # The public record the other banks see names no account.
    public = banks["SGBankMSP"].get(path).json()
    assert public["status"] == "settled" and public["payer_account"] is None
    print(f"PvP end to end (propose, accept, both legs delivered): {elapsed:.2f} s")


def test_pvp_refusal_refunds_both(banks: dict[str, BankGateway]) -> None:
    us, hk = banks[US], banks[HK]
    parties = _trading_pair(banks)
    offer = _offer(banks, parties)
    path = f"/v1/pvp/{offer['pvp_id']}"
    refused = hk.post(f"{path}/refuse", {}, {**parties["bob"].headers, "Idempotency-Key": unique("r")})
    assert refused.status_code == 200 and refused.json()["status"] == "refused", refused.text
    assert wait_for(lambda: _pvp_status(us, offer["pvp_id"]) == "refunded", timeout=60)
    late = hk.post(f"{path}/accept", {}, {**parties["bob"].headers, "Idempotency-Key": unique("a")})
    assert late.status_code == 409 and late.json()["code"] == "invalid_state", late.text
    assert us.balances(parties["alice"])["USD"] == "1000.00" and hk.balances(parties["bob"])["HKD"] == "10000.00"
    assert us.balances(parties["bob_usd"]).get("USD", "0.00") == "0.00"


def test_pvp_timeout_refunds_both(banks: dict[str, BankGateway]) -> None:
    us, hk = banks[US], banks[HK]
    parties = _trading_pair(banks)
    offer = _offer(banks, parties, seconds=2)
    time.sleep(2.5)
    late = hk.post(f"/v1/pvp/{offer['pvp_id']}/accept", {}, {**parties["bob"].headers, "Idempotency-Key": unique("a")})
    assert late.status_code == 409 and late.json()["code"] == "invalid_state", late.text
    assert wait_for(lambda: _pvp_status(us, offer["pvp_id"]) == "refunded", timeout=SWEEP_WAIT, interval=1)
    assert us.balances(parties["alice"])["USD"] == "1000.00" and hk.balances(parties["bob"])["HKD"] == "10000.00"


def test_a_rogue_bank_cannot_have_one_leg_delivered_alone(
    banks: dict[str, BankGateway], ledger: Consortium, state_dir: Path
) -> None:
    """HKBank runs altered chaincode: it marks the offer locked without locking Bob's HKD, and
    forges USBank's lock marker. USBank delivers nothing to Bob and refunds Alice at the expiry."""
    us = banks[US]
    parties = _trading_pair(banks)
    offer = _offer(banks, parties, seconds=8)
    pvp_id = offer["pvp_id"]
    with altered_chaincode(state_dir, HK):
        outcome = ledger[HK].attempt("RoguePvpMarker", None, US, pvp_id, "USD", "10000")
        assert outcome.code == "ENDORSEMENT_POLICY_FAILURE"
        # USBank's books are its implicit collection: HKBank's peer simulates the write, validation refuses it.
        forged = ledger[HK].attempt("RogueCredit", None, US, parties["bob_usd"].account_id, "USD", "10000")
        assert forged.code == "ENDORSEMENT_POLICY_FAILURE"
        # Valid: the record's policy lets the acceptor move a proposed offer on.
        assert ledger[HK].attempt("RogueLockPvp", None, pvp_id).code == "VALID"
    assert wait_for(lambda: _pvp_status(us, pvp_id) == "locked", timeout=30)
    # USBank's follower heard PvpLocked; its contract finds no HKBank lock marker and delivers nothing.
    refused = ledger[US].refused("DeliverPvpLeg", {"pvp_id": pvp_id})
    assert "both legs" in refused.message, refused.message
    assert wait_for(lambda: _pvp_status(us, pvp_id) == "refunded", timeout=SWEEP_WAIT, interval=1)
    assert us.balances(parties["bob_usd"]).get("USD", "0.00") == "0.00"
    assert us.balances(parties["alice"])["USD"] == "1000.00"


def test_the_readmes_pvp_example_works_as_written(banks: dict[str, BankGateway]) -> None:
    from tests.integration.test_readme import for_test_network, json_documents, readme_api_block

    section = (ROOT / "README.md").read_text().split("## Payment versus payment", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under 'Payment versus payment'"
    script = for_test_network(readme_api_block() + match.group(1))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    trade = [d for d in json_documents(result.stdout) if "pvp_id" in d][-1]
    assert (trade["status"], trade["amount"], trade["counter_amount"]) == ("settled", "100.00", "780.00"), trade


def test_no_escrow_or_trade_data_in_blocks_or_logs(
    banks: dict[str, BankGateway], ledger: Consortium, state_dir: Path
) -> None:
    """Accounts, remittance text and the attestor stay in the banks' collections: never in a block
    (arguments, public writes, events, transaction answers) or a log line."""
    from tests.integration.deposit_token.test_privacy import _all_blocks
    from tests.integration.deposit_token_support import org_homes

    us, hk = banks[US], banks[HK]
    buyer, supplier = _funded(us, "100.00"), hk.open_account("Supplier Ltd", "HK")
    attestor_id = unique("surveyor").lower()
    inspector = _attestor(us, attestor_id)
    remittance = unique("PO-secret")
    escrow = _lock(
        us, buyer, HK, supplier.account_id, "20.00", release_by="attestor", attestor=attestor_id, remittance=remittance
    ).json()
    released = _release(us, inspector, escrow["escrow_id"], "20.00", unique("rel")).json()
    assert wait_for(lambda: us.payment(released["payment_id"])["status"] == "completed", timeout=60)
    parties = _trading_pair(banks)
    offer = _offer(banks, parties)
    hk.post(f"/v1/pvp/{offer['pvp_id']}/accept", {}, {**parties["bob"].headers, "Idempotency-Key": unique("a")})
    assert wait_for(lambda: _pvp_status(us, offer["pvp_id"]) == "settled", timeout=60)
    secrets = [buyer.account_id, supplier.account_id, attestor_id, remittance]
    secrets += [party.account_id for party in parties.values()]
    blocks = b"".join(_all_blocks(ledger))
    assert b"EscrowLocked" in blocks and b"PvpLocked" in blocks  # the scan sees what it should
    for secret in secrets:
        assert secret.encode() not in blocks, secret
    for path in sorted(log for home in org_homes(state_dir) for log in (home / "logs").glob("*.log")):
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"{secret} in {path.name}"
