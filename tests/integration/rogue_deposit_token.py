"""Altered deposit-token chaincode, as a misbehaving bank could run on its own peer.

It answers every honest function and adds functions that skip the contract's checks and
write other banks' keys directly. Tests run it on one bank's chaincode server to show
that Fabric's validation (collection-level endorsement policies and state-based
endorsement), not only the honest code, protects the other banks.
"""

from __future__ import annotations

import json

from chaincode.deposit_token import disclosures, keys, reference
from chaincode.deposit_token.collections import (
    books_collection,
    disclosure_collection,
    regulator_collection,
    supply_collection,
)
from chaincode.deposit_token.contract import DepositTokenContract
from chaincode.deposit_token.ledger import Ledger
from chaincode.shim.contract import Context, transaction


class RogueDepositTokenContract(DepositTokenContract):
    name = "deposit_token"

    @transaction
    def rogue_mint(self, ctx: Context, issuer: str, currency: str, amount: int) -> dict[str, object]:
        """Raise another bank's supply (issue its token) without its endorsement."""
        ledger = Ledger(ctx.stub)
        key = keys.supply_change(currency, ledger.unique_id())
        ledger.put_private(supply_collection(issuer), key, {"delta": amount})
        return {"minted": amount}

    @transaction
    def rogue_credit(self, ctx: Context, bank: str, account_id: str, currency: str, amount: int) -> dict[str, object]:
        """Credit a customer in another bank's books."""
        ledger = Ledger(ctx.stub)
        key = keys.credit(account_id, ledger.unique_id())
        ledger.put_private(books_collection(bank), key, {"currency": currency, "amount": amount})
        return {"credited": amount}

    @transaction
    def rogue_debit(self, ctx: Context, bank: str, account_id: str, currency: str) -> dict[str, object]:
        """Empty a customer's balance head in another bank's books."""
        ledger = Ledger(ctx.stub)
        ledger.put_private(books_collection(bank), keys.head(account_id), {"balances": {currency: 0}})
        return {"debited": True}

    @transaction
    def rogue_move_payment(self, ctx: Context, payment_id: str, status: str) -> dict[str, object]:
        """Move a payment record on, whoever is responsible for it."""
        ledger = Ledger(ctx.stub)
        record = ledger.get(keys.payment(payment_id)) or {}
        record["status"] = status
        ledger.put(keys.payment(payment_id), record)
        return {"status": status}

    @transaction
    def rogue_corridor(self, ctx: Context, policy_json: str) -> dict[str, object]:
        """Rewrite the regulator's corridor policy."""
        ledger = Ledger(ctx.stub)
        ledger.put(keys.corridor(), json.loads(policy_json))
        return {"corridor": "rewritten"}

    @transaction
    def rogue_read_books(self, ctx: Context, bank: str, account_id: str) -> dict[str, object]:
        """Read a customer record from another bank's books (Fabric refuses: not a member)."""
        raw = ctx.stub.get_private_data(books_collection(bank), keys.account(account_id))
        return {"record": raw.decode("utf-8", errors="replace")}

    @transaction
    def rogue_hash_books(self, ctx: Context, bank: str, account_id: str) -> dict[str, object]:
        """What a non-member can learn of another bank's record: its hash only."""
        digest = ctx.stub.get_private_data_hash(books_collection(bank), keys.account(account_id))
        return {"sha256": digest.hex()}

    @transaction
    def rogue_archive_corridor(self, ctx: Context, archived_by_tx: str, policy_json: str) -> dict[str, object]:
        """Plant a corridor policy version of its own where the regulator's archived versions live."""
        ledger = Ledger(ctx.stub)
        ledger.put(keys.corridor_version(1, archived_by_tx), json.loads(policy_json))
        return {"planted": True}

    @transaction
    def rogue_reset_corridor_usage(
        self, ctx: Context, bank: str, currency: str, source: str, target: str, day: str
    ) -> dict[str, object]:
        """Reset another bank's count of what it sent in a capped corridor on a day."""
        ledger = Ledger(ctx.stub)
        key = keys.corridor_usage(currency, source, target, day)
        ledger.put_private(books_collection(bank), key, {"total": 0, "payments": 0})
        return {"reset": True}

    @transaction
    def rogue_disclose(self, ctx: Context, request_id: str, details_json: str) -> dict[str, object]:
        """Answer a disclosure request with made-up details (the bank lies to the regulator)."""
        ledger = Ledger(ctx.stub)
        bank = ctx.client_identity.msp_id
        record = disclosures._require(ledger, request_id)
        answer_key = keys.disclosure_answer(request_id, bank)
        disclosures.disclose(ledger, bank, record, json.loads(details_json), "00" * 16, answer_key)
        return {"disclosed": "made up"}

    @transaction
    def rogue_request_disclosure(self, ctx: Context, request_id: str, payment_id: str) -> dict[str, object]:
        """Plant a disclosure request the regulator never made."""
        ledger = Ledger(ctx.stub)
        regulator = reference.load_config(ledger).regulator
        record = {"request_id": request_id, "payment_id": payment_id, "legal_basis": "forged",
                  "requested_by": regulator, "requested_at": ledger.now_iso}  # fmt: skip
        ledger.put_private(regulator_collection(regulator), keys.disclosure(request_id), record)
        return {"planted": True}

    @transaction
    def rogue_read_disclosure(self, ctx: Context, bank: str, request_id: str) -> dict[str, object]:
        """Read what another bank disclosed to the regulator (Fabric refuses: not a member)."""
        raw = ctx.stub.get_private_data(disclosure_collection(bank), keys.disclosed(request_id))
        return {"record": raw.decode("utf-8", errors="replace")}

    @transaction
    def rogue_lock_pvp(self, ctx: Context, pvp_id: str) -> dict[str, object]:
        """As a PvP's acceptor: mark the offer locked (and announce it) without locking the own leg.

        The record's policy lets the acceptor move a proposed offer on; what must not follow is
        the proposer's bank delivering its leg to this bank's customer.
        """
        ledger = Ledger(ctx.stub)
        record = ledger.get(keys.pvp(pvp_id)) or {}
        record["status"] = "locked"
        ledger.put(keys.pvp(pvp_id), record)
        legs = record.get("legs") or {}
        ledger.emit("PvpLocked", {"pvp_id": pvp_id, "proposer_bank": legs.get("p", {}).get("bank"),
                                  "acceptor_bank": legs.get("a", {}).get("bank")})  # fmt: skip
        return {"status": "locked"}

    @transaction
    def rogue_pvp_marker(self, ctx: Context, bank: str, pvp_id: str, currency: str, amount: int) -> dict[str, object]:
        """Forge another bank's PvP lock marker in its supply collection."""
        ledger = Ledger(ctx.stub)
        ledger.put_private(supply_collection(bank), keys.pvp_lock(pvp_id),
                           {"pvp_id": pvp_id, "bank": bank, "currency": currency, "amount": amount})  # fmt: skip
        return {"forged": True}
