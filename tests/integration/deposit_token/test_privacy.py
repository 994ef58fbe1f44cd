"""Privacy on the real network: books stay on their bank's peer; blocks, events and logs hold no
customer data.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from chaincode.deposit_token.ledger import encode
from tests.integration.deposit_token_support import (
    HK,
    REG,
    SG,
    US,
    Consortium,
    Refused,
    altered_chaincode,
    org_homes,
)

pytestmark = pytest.mark.network


class Customer:
    """Customer data made of random markers, so finding one anywhere is proof of a leak."""

    def __init__(self, label: str) -> None:
        marker = uuid.uuid4().hex[:12]
        self.account_id = f"acct{marker}"
        self.holder = f"Holder{marker}"
        self.kyc_ref = f"KYC{marker}"
        self.remittance = f"Remit{marker}"
        self.label = label

    def secrets(self) -> list[str]:
        return [self.account_id, self.holder, self.kyc_ref, self.remittance]


@pytest.fixture(scope="module")
def customers(banks: Consortium) -> dict[str, Customer]:
    """Run every kind of flow with marked customer data, including refusals."""
    payer, payee, local = Customer("payer"), Customer("payee"), Customer("local")
    us, hk = banks[US], banks[HK]
    for org, customer, jurisdiction in ((us, payer, "US"), (hk, payee, "HK"), (us, local, "US")):
        org.submit(
            "OpenAccount",
            {
                "account_id": customer.account_id,
                "holder": customer.holder,
                "jurisdiction": jurisdiction,
                "kyc_ref": customer.kyc_ref,
            },
        )
    us.issue(payer.account_id, 5000)
    us.submit("Transfer", us.transfer_request(payer.account_id, local.account_id, 100, banks.id("priv-t")))
    started = us.submit(
        "InitiatePayment",
        us.payment_request(
            banks.id("priv-p"), payer.account_id, HK, payee.account_id, 700, remittance=payer.remittance
        ),
    )
    hk.submit("CompletePayment", {"payment_id": started["payment_id"]})
    # Refusals go through the peers' logs too.
    for request in (
        us.transfer_request(payer.account_id, local.account_id, 10**9, banks.id("priv-big"))(),
        us.transfer_request(payer.account_id, payee.account_id, 1, banks.id("priv-ghost"))(),
    ):
        with pytest.raises(Refused):
            us.submit("Transfer", request, retries=1)
    us.submit("FreezeAccount", {"account_id": local.account_id, "reason": f"reason {local.remittance}"})
    us.evaluate("GetAccountHistory", {"account_id": payer.account_id})
    hk.evaluate("GetPayment", {"details": True}, started["payment_id"])
    return {"payer": payer, "payee": payee, "local": local}


def test_another_banks_client_cannot_read_the_books(banks: Consortium, customers: dict[str, Customer]) -> None:
    payer = customers["payer"]
    contract = banks[HK].contract
    transient = {"request": json.dumps({"account_id": payer.account_id}).encode()}
    for function in ("GetAccount", "GetAccountHistory"):
        try:
            contract.evaluate_transaction(function, transient=transient, endorsing_organizations=[US])
        except Exception as error:
            assert "not_authorized" in str(error)
        else:
            raise AssertionError(f"{function} answered a client of HKBank on USBank's peer")
    # On its own peer HKBank simply has no such account.
    with pytest.raises(Refused) as refused:
        banks[HK].evaluate("GetAccount", {"account_id": payer.account_id})
    assert refused.value.reason == "unknown_account"
    with pytest.raises(Refused) as refused:
        banks[SG].evaluate("GetPayment", {"details": True}, "0" * 64)
    assert refused.value.reason == "payment_not_found"


def test_another_banks_peer_sees_only_hashes(
    banks: Consortium, state_dir: Path, customers: dict[str, Customer]
) -> None:
    payer = customers["payer"]
    account = banks[US].account(payer.account_id)
    stored = {
        key: account[key] for key in ("holder", "jurisdiction", "kyc_ref", "status", "opened_at", "revision", "limits")
    }
    with altered_chaincode(state_dir, HK):
        hk = banks[HK]
        try:
            hk.evaluate("RogueReadBooks", None, US, payer.account_id)
        except Refused as refusal:
            # The books are USBank's implicit collection: HKBank's peer holds only its hashes.
            assert "private data matching public hash version is not available" in refusal.message
            assert payer.holder not in refusal.message
        else:
            raise AssertionError("HKBank's peer read USBank's books")
        digest = hk.evaluate("RogueHashBooks", None, US, payer.account_id)["sha256"]
    assert digest == hashlib.sha256(encode(stored)).hexdigest()


def _all_blocks(banks: Consortium) -> list[bytes]:
    """Every block of the channel, as raw bytes, read on the regulator's peer."""
    marker = banks[REG].submit_outcome(
        "SetPaymentTimeout", None, str(banks[REG].evaluate("GetReferenceData")["payment_timeout_seconds"])
    )
    blocks: list[bytes] = []
    network = banks[REG].gateway.get_network("tokens")
    with network.get_block_events(start_block=0, timeout=120) as stream:
        for block in stream:
            blocks.append(block.SerializeToString())
            if block.header.number >= marker.block:
                break
    return blocks


def test_no_customer_data_in_blocks_events_or_logs(
    banks: Consortium, state_dir: Path, customers: dict[str, Customer]
) -> None:
    secrets = [secret for customer in customers.values() for secret in customer.secrets()]
    blocks = _all_blocks(banks)
    assert len(blocks) > 5
    # Blocks carry every transaction's arguments, public writes, events and results.
    ledger_bytes = b"".join(blocks)
    assert b"PaymentInitiated" in ledger_bytes  # the scan sees what it should
    for secret in secrets:
        assert secret.encode() not in ledger_bytes, secret
    logs = sorted(log for home in org_homes(state_dir) for log in (home / "logs").glob("*.log"))
    assert any(path.name.startswith("peer.") for path in logs)
    assert any(path.name.startswith("cc.deposit_token.") for path in logs)
    for path in logs:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"{secret} in {path.name}"
