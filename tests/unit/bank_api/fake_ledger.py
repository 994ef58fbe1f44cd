"""An in-memory deposit-token network for the gateway's unit tests.

``FakeNetwork`` holds the state every bank shares; ``FakeNetwork.ledger(msp)`` is one bank's
view of it, implementing the ``Ledger`` port with the contract's rules and error codes
(docs/contract-api.md), so the HTTP layer and the follower are tested without Fabric.
``FakeNetwork.suspend``/``reinstate`` stand in for the regulator's SuspendBank/ReinstateBank.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from gateway.bank_api.ledger import (
    CONTRACT_CODES,
    JSON,
    ChannelView,
    ContractRejected,
    LedgerEvent,
    LedgerUnavailable,
    PeerUnreachable,
)
from gateway.bank_api.money import convert

CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "CNH": 2, "HKD": 2, "SGD": 2}
BANKS = [
    {"msp_id": "USBankMSP", "name": "USBank", "jurisdiction": "US", "currencies": ["USD"]},
    {"msp_id": "HKBankMSP", "name": "HKBank", "jurisdiction": "HK", "currencies": ["HKD", "CNH", "USD"]},
    {"msp_id": "SGBankMSP", "name": "SGBank", "jurisdiction": "SG", "currencies": ["SGD", "EUR", "USD"]},
]


def rejected(code: str, message: str) -> ContractRejected:
    return ContractRejected(code, message, CONTRACT_CODES[code])


def iso(epoch: float) -> str:
    """The contract's timestamps: ISO 8601 in UTC."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeNetwork:
    clock: Callable[[], float] = time.time
    payment_timeout: float = 300.0
    down: bool = False
    accounts: dict[str, dict[str, JSON]] = field(default_factory=dict)
    supply: dict[tuple[str, str], int] = field(default_factory=dict)
    references: dict[tuple[str, str], JSON] = field(default_factory=dict)
    payments: dict[str, JSON] = field(default_factory=dict)
    history: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)
    cycles: dict[str, JSON] = field(default_factory=dict)
    events: list[LedgerEvent] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # What the peer's gossip shows (organisation -> ledger height); every bank, up to date, when None.
    channel_members: dict[str, int] | None = None
    # When set, every call fails with it (one reason the ledger is unavailable: ledger.py).
    outage: LedgerUnavailable | None = None
    blocks_behind: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)
    tx_counter: int = 0
    # Banks the regulator suspended: MSP id -> (reason, since).
    suspended: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The regulator's disclosure requests, by request id (see ``request_disclosure``).
    disclosures: dict[str, JSON] = field(default_factory=dict)
    # Escrows by (payer bank, escrow id), with the contract's fields (escrow.py).
    escrows: dict[tuple[str, str], JSON] = field(default_factory=dict)
    # PvPs by id: the public record, with "_details" (the two banks' collection) and "_locked" (markers).
    pvps: dict[str, JSON] = field(default_factory=dict)

    def ledger(self, msp_id: str) -> FakeLedger:
        return FakeLedger(self, msp_id)

    def next_tx(self) -> str:
        self.tx_counter += 1
        return f"tx{self.tx_counter:06d}"

    def suspend(self, msp_id: str, reason: str) -> None:
        """The regulator's SuspendBank (the regulator has no gateway, so it acts here directly)."""
        with self.lock:
            self.suspended[msp_id] = (reason, iso(self.clock()))
            self.emit(self.next_tx(), "BankSuspended", {"bank": msp_id, "reason": reason})

    def reinstate(self, msp_id: str) -> None:
        with self.lock:
            del self.suspended[msp_id]
            self.emit(self.next_tx(), "BankReinstated", {"bank": msp_id})

    def require_active(self, msp_id: str, refused: str) -> None:
        if msp_id in self.suspended:
            reason, since = self.suspended[msp_id]
            raise rejected(
                "bank_suspended", f"{msp_id} is suspended by the regulator since {since} (reason: {reason}); {refused}"
            )

    def request_disclosure(self, payment_id: str, legal_basis: str) -> str:
        """The regulator's RequestDisclosure (the contract's rules are tested in tests/unit/contract)."""
        with self.lock:
            payment = self.payments[payment_id]
            request_id = hashlib.sha256(f"disclosure-{len(self.disclosures)}".encode()).hexdigest()
            banks = (payment["payer_bank"], payment["payee_bank"])
            self.disclosures[request_id] = {
                "request_id": request_id, "payment_id": payment_id, "payer_bank": banks[0], "payee_bank": banks[1],
                "legal_basis": legal_basis, "requested_by": "RegulatorMSP", "requested_at": iso(self.clock()),
                "answers": {bank: {"bank": bank, "status": "pending", "at": None, "tx_id": None, "reason": None}
                            for bank in banks},
            }  # fmt: skip
            return request_id

    def emit(self, tx_id: str, name: str, payload: JSON) -> None:
        # One transaction per block keeps the checkpoint arithmetic easy to follow.
        self.events.append(LedgerEvent(len(self.events) + 1, tx_id, name, payload))
        self.lock.notify_all()

    def balance(self, msp_id: str, account_id: str, currency: str) -> int:
        return int(self.accounts[msp_id][account_id]["balances"].get(currency, 0))

    def total_balances(self, currency: str) -> int:
        return sum(
            int(acc["balances"].get(currency, 0)) for accounts in self.accounts.values() for acc in accounts.values()
        )

    def total_supply(self, currency: str) -> int:
        return sum(amount for (_, ccy), amount in self.supply.items() if ccy == currency)


class FakeEventStream:
    def __init__(self, network: FakeNetwork, start_block: int, after_tx: str | None) -> None:
        self.network = network
        self.position = start_block
        self.after_tx = after_tx
        self.closed = False

    def __iter__(self) -> Iterator[LedgerEvent]:
        return self

    def __next__(self) -> LedgerEvent:
        with self.network.lock:
            while True:
                if self.closed:
                    raise StopIteration
                if self.network.down:
                    raise PeerUnreachable("peer down")
                for event in self.network.events:
                    if event.block_number < self.position:
                        continue
                    if self.after_tx is not None and event.block_number == self.position:
                        if event.transaction_id == self.after_tx:
                            self.after_tx = None
                        continue
                    self.position = event.block_number + 1
                    self.after_tx = None
                    return event
                self.network.lock.wait(0.05)

    def close(self) -> None:
        self.closed = True


class FakeLedger:
    def __init__(self, network: FakeNetwork, msp_id: str) -> None:
        self.network = network
        self._msp_id = msp_id

    @property
    def msp_id(self) -> str:
        return self._msp_id

    # plumbing -------------------------------------------------------------------------------

    def _call(self, name: str) -> None:
        if self.network.down:
            raise PeerUnreachable("peer down")
        if self.network.outage is not None:
            raise self.network.outage
        self.network.calls.append((self._msp_id, name))

    def _books(self) -> dict[str, JSON]:
        return self.network.accounts.setdefault(self._msp_id, {})

    def _account(self, account_id: str) -> JSON:
        account = self._books().get(account_id)
        if account is None:
            raise rejected("unknown_account", "no such account")
        return account

    def _bank(self, msp_id: str) -> JSON:
        for bank in BANKS:
            if bank["msp_id"] == msp_id:
                return bank
        raise rejected("unknown_bank", f"bank {msp_id} is not on the network")

    def _entry(self, account_id: str, kind: str, currency: str, amount: int, ref: str, payment_id: str | None) -> None:
        self.network.history.setdefault((self._msp_id, account_id), []).append(
            {
                "tx_id": self.network.next_tx(),
                "timestamp": iso(self.network.clock()),
                "kind": kind,
                "currency": currency,
                "amount": amount,
                "reference": ref,
                "payment_id": payment_id,
            }
        )

    def _debit(self, account: JSON, currency: str, amount: int) -> None:
        if account["status"] == "frozen":
            raise rejected("account_frozen", "the account is frozen")
        if account["status"] == "closed":
            raise rejected("account_closed", "the account is closed")
        limit = (account["limits"].get(currency) or {}).get("per_transaction")
        if limit is not None and amount > limit:
            raise rejected("limit_exceeded", f"amount {amount} is above the per-transaction limit {limit}")
        balance = int(account["balances"].get(currency, 0))
        if balance < amount:
            raise rejected("insufficient_funds", f"account balance {balance} is below the debit {amount}")
        account["balances"][currency] = balance - amount

    @staticmethod
    def _credit(account: JSON, currency: str, amount: int) -> None:
        account["balances"][currency] = int(account["balances"].get(currency, 0)) + amount

    def _issues(self, currency: str) -> None:
        if currency not in CURRENCIES:
            raise rejected("unknown_currency", f"currency {currency} is unknown")
        if currency not in self._bank(self._msp_id)["currencies"]:
            raise rejected("currency_not_issued", f"{self._msp_id} does not issue {currency}")

    # reference data ---------------------------------------------------------------------------

    def get_reference_data(self) -> JSON:
        self._call("GetReferenceData")
        banks = []
        with self.network.lock:
            for bank in copy.deepcopy(BANKS):
                reason, since = self.network.suspended.get(bank["msp_id"], (None, None))
                status = "active" if reason is None else "suspended"
                banks.append({**bank, "status": status, "status_reason": reason, "status_since": since})
        return {
            "regulator": "RegulatorMSP",
            "currencies": dict(CURRENCIES),
            "banks": banks,
            "corridor_policy": {"rules": [{"currency": "CNH", "cross_border_only": True}]},
        }

    def get_supply(self) -> JSON:
        self._call("GetSupply")
        with self.network.lock:
            return {
                "token_classes": [
                    {"issuer": issuer, "currency": ccy, "supply": amount}
                    for (issuer, ccy), amount in sorted(self.network.supply.items())
                ]
            }

    # accounts ----------------------------------------------------------------------------------

    def open_account(self, account_id: str, holder: str, jurisdiction: str, kyc_ref: str) -> JSON:
        self._call("OpenAccount")
        with self.network.lock:
            if account_id in self._books():
                raise rejected("account_exists", "an account with this id exists")
            self._books()[account_id] = {
                "account_id": account_id,
                "holder": holder,
                "jurisdiction": jurisdiction,
                "kyc_ref": kyc_ref,
                "status": "active",
                "limits": {},
                "balances": {},
            }
            return {"status": "active"}

    def freeze_account(self, account_id: str, reason: str) -> JSON:
        self._call("FreezeAccount")
        with self.network.lock:
            account = self._account(account_id)
            if account["status"] == "closed":
                raise rejected("account_closed", "the account is closed")
            account["status"] = "frozen"
            return {"status": "frozen"}

    def unfreeze_account(self, account_id: str) -> JSON:
        self._call("UnfreezeAccount")
        with self.network.lock:
            account = self._account(account_id)
            if account["status"] == "closed":
                raise rejected("account_closed", "the account is closed")
            account["status"] = "active"
            return {"status": "active"}

    def close_account(self, account_id: str) -> JSON:
        self._call("CloseAccount")
        with self.network.lock:
            account = self._account(account_id)
            if any(account["balances"].values()):
                raise rejected("account_not_empty", "the account still holds money")
            account["status"] = "closed"
            return {"status": "closed"}

    def set_limits(self, account_id: str, currency: str, per_transaction: int | None, daily: int | None) -> JSON:
        self._call("SetLimits")
        with self.network.lock:
            account = self._account(account_id)
            account["limits"][currency] = {"per_transaction": per_transaction, "daily": daily}
            return {"limits": account["limits"]}

    def get_account(self, account_id: str) -> JSON:
        self._call("GetAccount")
        with self.network.lock:
            return copy.deepcopy(self._account(account_id))

    def get_account_history(self, account_id: str, page_size: int, bookmark: str) -> JSON:
        self._call("GetAccountHistory")
        with self.network.lock:
            self._account(account_id)
            entries = list(reversed(self.network.history.get((self._msp_id, account_id), [])))
            start = int(bookmark) if bookmark.isdigit() else 0
            page = entries[start : start + page_size]
            more = start + page_size < len(entries)
            return {"entries": copy.deepcopy(page), "bookmark": str(start + page_size) if more else ""}

    # money -----------------------------------------------------------------------------------------

    def issue(self, account_id: str, currency: str, amount: int, deposit_ref: str) -> JSON:
        self._call("Issue")
        with self.network.lock:
            self._issues(currency)
            content = {"account_id": account_id, "currency": currency, "amount": amount}
            previous = self.network.references.get((self._msp_id, "deposit:" + deposit_ref))
            if previous is not None:
                if previous != content:
                    raise rejected("duplicate_reference", "deposit_ref was used for another issue")
                return {"issued": False}
            self.network.require_active(self._msp_id, "it may not issue new tokens")
            account = self._account(account_id)
            if account["status"] != "active":
                raise rejected(f"account_{account['status']}", f"the account is {account['status']}")
            self._credit(account, currency, amount)
            key = (self._msp_id, currency)
            self.network.supply[key] = self.network.supply.get(key, 0) + amount
            self.network.references[(self._msp_id, "deposit:" + deposit_ref)] = content
            self._entry(account_id, "issue", currency, amount, deposit_ref, None)
            return {"issued": True}

    def redeem(self, account_id: str, currency: str, amount: int, withdrawal_ref: str) -> JSON:
        self._call("Redeem")
        with self.network.lock:
            self._issues(currency)
            content = {"account_id": account_id, "currency": currency, "amount": amount}
            previous = self.network.references.get((self._msp_id, "withdrawal:" + withdrawal_ref))
            if previous is not None:
                if previous != content:
                    raise rejected("duplicate_reference", "withdrawal_ref was used for another redemption")
                return {"redeemed": False}
            account = self._account(account_id)
            self._debit(account, currency, amount)
            self.network.supply[(self._msp_id, currency)] -= amount
            self.network.references[(self._msp_id, "withdrawal:" + withdrawal_ref)] = content
            self._entry(account_id, "redeem", currency, -amount, withdrawal_ref, None)
            return {"redeemed": True}

    def transfer(self, from_account: str, to_account: str, currency: str, amount: int, transfer_id: str) -> JSON:
        self._call("Transfer")
        with self.network.lock:
            if (self._msp_id, "transfer:" + transfer_id) in self.network.references:
                return {"transferred": False}
            self.network.require_active(self._msp_id, "no new transfer within it is accepted")
            payer = self._account(from_account)
            payee = self._account(to_account)
            if payee["status"] != "active":
                raise rejected(f"account_{payee['status']}", f"the payee account is {payee['status']}")
            self._debit(payer, currency, amount)
            self._credit(payee, currency, amount)
            self.network.references[(self._msp_id, "transfer:" + transfer_id)] = {}
            self._entry(from_account, "transfer_out", currency, -amount, transfer_id, None)
            self._entry(to_account, "transfer_in", currency, amount, transfer_id, None)
            return {"transferred": True}

    # payments -------------------------------------------------------------------------------------

    def initiate_payment(self, request: JSON) -> JSON:
        self._call("InitiatePayment")
        with self.network.lock:
            payment_id = hashlib.sha256(f"{self._msp_id}\n{request['idempotency_key']}".encode()).hexdigest()
            if payment_id in self.network.payments:
                return {"payment_id": payment_id, "status": "initiated", "created": False}
            payee_bank = self._bank(request["payee_bank"])
            if payee_bank["msp_id"] == self._msp_id:
                raise rejected("invalid_request", "'payee_bank' is the payer's own bank: use Transfer")
            currency = request["currency"]
            if "rate" in request:
                expected = convert(
                    request["amount"],
                    CURRENCIES[currency],
                    CURRENCIES[request["payee_currency"]],
                    Decimal(request["rate"]),
                )
                if expected != request["payee_amount"]:
                    raise rejected("invalid_request", "'payee_amount' does not match amount x rate")
            payee_currency = request.get("payee_currency") or currency
            if payee_currency not in payee_bank["currencies"]:
                raise rejected("currency_not_issued", f"{payee_bank['msp_id']} does not issue {payee_currency}")
            self._issues(currency)
            for bank in (self._msp_id, payee_bank["msp_id"]):
                self.network.require_active(bank, "no new payment to or from it is accepted")
            account = self._account(request["payer_account"])
            self._debit(account, currency, request["amount"])
            self.network.supply[(self._msp_id, currency)] -= request["amount"]
            tx_id = self.network.next_tx()
            now = self.network.clock()
            self.network.payments[payment_id] = {
                "payment_id": payment_id,
                "payer_bank": self._msp_id,
                "payee_bank": payee_bank["msp_id"],
                "currency": currency,
                "amount": request["amount"],
                "payee_currency": payee_currency,
                "payee_amount": request.get("payee_amount", request["amount"]),
                "rate": request.get("rate"),
                "status": "initiated",
                "reason": None,
                "created_at": iso(now),
                "created_epoch": now,
                "timeline": [{"status": "initiated", "at": iso(now), "tx_id": tx_id}],
                "details_hash": "x" * 64,
                "cycle_id": None,
                "_details": {
                    "payer_account": request["payer_account"],
                    "payee_account": request["payee_account"],
                    "remittance": request.get("remittance", ""),
                },
            }
            self._entry(request["payer_account"], "payment_out", currency, -request["amount"], payment_id, payment_id)
            self.network.emit(
                tx_id,
                "PaymentInitiated",
                {"payment_id": payment_id, "payer_bank": self._msp_id, "payee_bank": payee_bank["msp_id"]},
            )
            public = {k: v for k, v in self.network.payments[payment_id].items() if not k.startswith("_")}
            public.pop("created_epoch", None)
            return {"payment_id": payment_id, "status": "initiated", "created": True, "payment": copy.deepcopy(public)}

    # escrow ---------------------------------------------------------------------------------------

    def lock_escrow(self, request: JSON) -> JSON:
        self._call("LockEscrow")
        with self.network.lock:
            escrow_id = hashlib.sha256(f"escrow\n{self._msp_id}\n{request['idempotency_key']}".encode()).hexdigest()
            existing = self.network.escrows.get((self._msp_id, escrow_id))
            if existing is not None:
                return {"escrow_id": escrow_id, "created": False, "escrow": self._escrow_view(existing)}
            payee_bank = self._bank(request["payee_bank"])
            currency = request["currency"]
            self._issues(currency)
            if currency not in payee_bank["currencies"]:
                raise rejected("currency_not_issued", f"{payee_bank['msp_id']} does not issue {currency}")
            if payee_bank["msp_id"] == self._msp_id:
                self._account(request["payee_account"])
            if self.network.clock() >= datetime.fromisoformat(request["expires_at"].replace("Z", "+00:00")).timestamp():
                raise rejected("invalid_request", "'expires_at' is not in the future")
            account = self._account(request["payer_account"])
            self._debit(account, currency, request["amount"])
            # As the contract books it: an entry whose reference is the escrow (the console finds escrows by it).
            self._entry(request["payer_account"], "escrow_lock", currency, -request["amount"], escrow_id, None)
            self.network.supply[(self._msp_id, currency)] -= request["amount"]
            record: JSON = {
                "escrow_id": escrow_id, "payer_bank": self._msp_id, "payer_account": request["payer_account"],
                "payee_bank": payee_bank["msp_id"], "payee_account": request["payee_account"], "currency": currency,
                "amount": request["amount"], "release_by": request["release_by"],
                "attestor": request.get("attestor"), "expires_at": request["expires_at"],
                "on_expiry": request["on_expiry"], "remittance": request.get("remittance", ""), "status": "open",
                "locked": request["amount"], "released": 0, "refunded": 0, "releases": [], "approvals": {},
                "created_at": iso(self.network.clock()), "closed_at": None,
            }  # fmt: skip
            self.network.escrows[(self._msp_id, escrow_id)] = record
            return {"escrow_id": escrow_id, "created": True, "escrow": self._escrow_view(record)}

    @staticmethod
    def _escrow_view(record: JSON) -> JSON:
        return {**copy.deepcopy(record), "available": record["locked"] - record["released"] - record["refunded"]}

    def _escrow(self, escrow_id: str) -> JSON:
        record = self.network.escrows.get((self._msp_id, escrow_id))
        if record is None:
            raise rejected("escrow_not_found", "no such escrow")
        return record

    def release_escrow(self, request: JSON) -> JSON:
        self._call("ReleaseEscrow")
        with self.network.lock:
            record = self._escrow(request["escrow_id"])
            amount, by = request["amount"], request["by"]
            done = [r for r in record["releases"] if r["release_id"] == request["release_id"]]
            if done:
                if done[0]["amount"] != amount:
                    raise rejected("duplicate_reference", "'release_id' was already used for a different amount")
                return {"escrow_id": record["escrow_id"], "released": False, "escrow": self._escrow_view(record)}
            if record["status"] != "open":
                raise rejected("invalid_state", "nothing is left to release")
            if by == "attestor" and request.get("attestor") != record["attestor"]:
                raise rejected("not_authorized", "only the escrow's attestor may release as attestor")
            if record["release_by"] != "both" and by != record["release_by"]:
                raise rejected("not_authorized", "not this releaser")
            left = record["locked"] - record["released"] - record["refunded"]
            if amount > left:
                raise rejected("insufficient_funds", f"the release {amount} is above the {left} still locked")
            if record["release_by"] == "both":
                approval = record["approvals"].setdefault(request["release_id"], {"amount": amount, "by": []})
                if approval["amount"] != amount:
                    raise rejected("duplicate_reference", "approved for a different amount")
                approval["by"] = sorted({*approval["by"], by})
                if approval["by"] != ["attestor", "buyer"]:
                    waiting = "attestor" if by == "buyer" else "buyer"
                    return {"escrow_id": record["escrow_id"], "released": False, "awaiting": waiting,
                            "escrow": self._escrow_view(record)}  # fmt: skip
                record["approvals"].pop(request["release_id"])
            payment_id = self._escrow_pay_out(record, request["release_id"], amount)
            record["releases"].append(
                {"release_id": request["release_id"], "amount": amount, "by": by, "at": iso(self.network.clock()),
                 "payment_id": payment_id}
            )  # fmt: skip
            self._escrow_close(record)
            return {"escrow_id": record["escrow_id"], "released": True, "payment_id": payment_id,
                    "escrow": self._escrow_view(record)}  # fmt: skip

    def _escrow_pay_out(self, record: JSON, release_id: str, amount: int) -> str | None:
        record["released"] += amount
        currency = record["currency"]
        if record["payee_bank"] == self._msp_id:
            self._credit(self._account(record["payee_account"]), currency, amount)
            self.network.supply[(self._msp_id, currency)] += amount
            return None
        # An interbank release: the payee bank completes it like any payment (no second debit).
        self.network.supply[(self._msp_id, currency)] += amount
        self._credit(self._account(record["payer_account"]), currency, amount)
        started = self.initiate_payment(
            {"idempotency_key": f"escrow/{record['escrow_id']}/{release_id}", "payer_account": record["payer_account"],
             "payee_bank": record["payee_bank"], "payee_account": record["payee_account"], "currency": currency,
             "amount": amount}
        )  # fmt: skip
        return str(started["payment_id"])

    def _escrow_close(self, record: JSON) -> None:
        if record["locked"] == record["released"] + record["refunded"]:
            record["status"] = "released" if record["refunded"] == 0 else "refunded"
            record["closed_at"] = iso(self.network.clock())

    def expire_escrow(self, escrow_id: str) -> JSON:
        self._call("ExpireEscrow")
        with self.network.lock:
            record = self._escrow(escrow_id)
            if record["status"] != "open":
                return {"escrow_id": escrow_id, "expired": False, "escrow": self._escrow_view(record)}
            expires = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()
            if self.network.clock() < expires:
                raise rejected("not_expired", f"the escrow expires at {record['expires_at']}")
            left = record["locked"] - record["released"] - record["refunded"]
            payment_id = None
            if record["on_expiry"] == "release":
                payment_id = self._escrow_pay_out(record, "expiry", left)
                record["releases"].append(
                    {"release_id": "expiry", "amount": left, "by": "expiry", "at": iso(self.network.clock()),
                     "payment_id": payment_id}
                )  # fmt: skip
            else:
                self._credit(self._account(record["payer_account"]), record["currency"], left)
                self.network.supply[(self._msp_id, record["currency"])] += left
                record["refunded"] += left
            self._escrow_close(record)
            return {"escrow_id": escrow_id, "expired": True, "outcome": record["on_expiry"],
                    "payment_id": payment_id, "escrow": self._escrow_view(record)}  # fmt: skip

    def get_escrow(self, escrow_id: str) -> JSON:
        self._call("GetEscrow")
        with self.network.lock:
            return self._escrow_view(self._escrow(escrow_id))

    # Supply here is one number per class, not a list of changes: there is never anything to fold.
    # Folding is tested on the real contract (tests/unit/regulator/test_supply_fold.py).
    def get_supply_changes(self, currency: str, page_size: int) -> JSON:
        self._call("GetSupplyChanges")
        return {"currency": currency, "change_ids": []}

    def fold_supply(self, currency: str, change_ids: list[str]) -> JSON:
        self._call("FoldSupply")
        return {"currency": currency, "folded": 0, "total": 0}

    def list_due_escrows(self, limit: int) -> JSON:
        self._call("ListDueEscrows")
        with self.network.lock:
            now = self.network.clock()
            due = [
                escrow_id
                for (bank, escrow_id), record in self.network.escrows.items()
                if bank == self._msp_id and record["status"] == "open"
                and datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp() <= now
            ]  # fmt: skip
            return {"escrow_ids": due[:limit]}

    # payment versus payment ------------------------------------------------------------------------

    def _pvp(self, pvp_id: str) -> JSON:
        record = self.network.pvps.get(pvp_id)
        if record is None:
            raise rejected("pvp_not_found", "no such PvP")
        return record

    def _pvp_public(self, record: JSON, details: bool = False) -> JSON:
        public = {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}
        if details:
            banks = (record["legs"]["p"]["bank"], record["legs"]["a"]["bank"])
            if self._msp_id not in banks:
                raise rejected("not_authorized", "only the two banks of a PvP may read its details")
            public["details"] = copy.deepcopy(record["_details"])
        return public

    def _pvp_move(self, record: JSON, status: str) -> None:
        record["status"] = status
        record["timeline"].append({"status": status, "at": iso(self.network.clock()), "tx_id": self.network.next_tx()})

    def propose_pvp(self, request: JSON) -> JSON:
        self._call("ProposePvp")
        with self.network.lock:
            pvp_id = hashlib.sha256(f"pvp\n{self._msp_id}\n{request['idempotency_key']}".encode()).hexdigest()
            if pvp_id in self.network.pvps:
                record = self.network.pvps[pvp_id]
                return {"pvp_id": pvp_id, "status": record["status"], "created": False, "pvp": self._pvp_public(record)}
            counter = self._bank(request["counter_bank"])
            self._issues(request["currency"])
            if request["counter_currency"] not in counter["currencies"]:
                raise rejected(
                    "currency_not_issued", f"{counter['msp_id']} does not issue {request['counter_currency']}"
                )
            self._account(request["payee_account"])
            self._debit(self._account(request["payer_account"]), request["currency"], request["amount"])
            self._entry(request["payer_account"], "pvp_out", request["currency"], -request["amount"], pvp_id, None)
            self.network.supply[(self._msp_id, request["currency"])] -= request["amount"]
            now = self.network.clock()
            record: JSON = {
                "pvp_id": pvp_id,
                "legs": {
                    "p": {"bank": self._msp_id, "currency": request["currency"], "amount": request["amount"],
                          "delivered": False},
                    "a": {"bank": counter["msp_id"], "currency": request["counter_currency"],
                          "amount": request["counter_amount"], "delivered": False},
                },
                "rate": request["rate"], "expires_at": request["expires_at"], "status": "proposed", "reason": None,
                "created_at": iso(now), "timeline": [],
                "_details": {name: request[name] for name in ("payer_account", "payee_account",
                                                               "counter_payer_account", "counter_payee_account")},
                "_locked": {"p"},
            }  # fmt: skip
            self._pvp_move(record, "proposed")
            self.network.pvps[pvp_id] = record
            self.network.emit(
                self.network.next_tx(), "PvpProposed",
                {"pvp_id": pvp_id, "proposer_bank": self._msp_id, "acceptor_bank": counter["msp_id"]},
            )  # fmt: skip
            return {"pvp_id": pvp_id, "status": "proposed", "created": True, "pvp": self._pvp_public(record)}

    def accept_pvp(self, pvp_id: str, payer_account: str) -> JSON:
        self._call("AcceptPvp")
        with self.network.lock:
            record = self._pvp(pvp_id)
            if record["legs"]["a"]["bank"] != self._msp_id:
                raise rejected("not_authorized", "only the counterparty's bank accepts a PvP")
            if "a" in record["_locked"]:
                return {
                    "pvp_id": pvp_id,
                    "status": record["status"],
                    "accepted": False,
                    "pvp": self._pvp_public(record),
                }
            if record["status"] != "proposed":
                raise rejected("invalid_state", f"the PvP is {record['status']}, not proposed")
            expires = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()
            if self.network.clock() >= expires:
                raise rejected("invalid_state", "the offer has expired")
            if record["_details"]["counter_payer_account"] != payer_account:
                raise rejected("not_authorized", "the PvP names another account to pay this leg")
            leg = record["legs"]["a"]
            self._account(record["_details"]["counter_payee_account"])
            self._debit(self._account(payer_account), leg["currency"], leg["amount"])
            self._entry(payer_account, "pvp_out", leg["currency"], -leg["amount"], pvp_id, None)
            self.network.supply[(self._msp_id, leg["currency"])] -= leg["amount"]
            record["_locked"].add("a")
            self._pvp_move(record, "locked")
            self.network.emit(
                self.network.next_tx(),
                "PvpLocked",
                {"pvp_id": pvp_id, "proposer_bank": record["legs"]["p"]["bank"], "acceptor_bank": self._msp_id},
            )
            return {"pvp_id": pvp_id, "status": "locked", "accepted": True, "pvp": self._pvp_public(record)}

    def refuse_pvp(self, pvp_id: str, reason: str) -> JSON:
        self._call("RefusePvp")
        with self.network.lock:
            record = self._pvp(pvp_id)
            if record["legs"]["a"]["bank"] != self._msp_id:
                raise rejected("not_authorized", "only the counterparty's bank refuses a PvP")
            if record["status"] != "proposed":
                raise rejected("invalid_state", f"the PvP is {record['status']}, not proposed")
            record["reason"] = reason
            self._pvp_move(record, "refused")
            self.network.emit(
                self.network.next_tx(),
                "PvpRefused",
                {"pvp_id": pvp_id, "proposer_bank": record["legs"]["p"]["bank"], "acceptor_bank": self._msp_id},
            )
            return {"pvp_id": pvp_id, "status": "refused", "refused": True, "pvp": self._pvp_public(record)}

    def deliver_pvp_leg(self, pvp_id: str) -> JSON:
        self._call("DeliverPvpLeg")
        with self.network.lock:
            record = self._pvp(pvp_id)
            side = "p" if record["legs"]["p"]["bank"] == self._msp_id else "a"
            leg = record["legs"][side]
            if leg["delivered"]:
                return {
                    "pvp_id": pvp_id,
                    "status": record["status"],
                    "delivered": False,
                    "pvp": self._pvp_public(record),
                }
            if record["_locked"] != {"p", "a"}:
                raise rejected("invalid_state", "both legs must be locked before either is delivered")
            payee = record["_details"]["payee_account" if side == "p" else "counter_payee_account"]
            self._credit(self._account(payee), leg["currency"], leg["amount"])
            self.network.supply[(self._msp_id, leg["currency"])] += leg["amount"]
            leg["delivered"] = True
            done = record["legs"]["p"]["delivered"] and record["legs"]["a"]["delivered"]
            self._pvp_move(record, "settled" if done else "locked")
            return {"pvp_id": pvp_id, "status": record["status"], "delivered": True, "pvp": self._pvp_public(record)}

    def refund_pvp_leg(self, pvp_id: str) -> JSON:
        self._call("RefundPvpLeg")
        with self.network.lock:
            record = self._pvp(pvp_id)
            if record["legs"]["p"]["bank"] != self._msp_id:
                raise rejected("not_authorized", "only the proposer's bank refunds a PvP")
            if record["status"] == "refunded":
                return {"pvp_id": pvp_id, "status": "refunded", "refunded": False, "pvp": self._pvp_public(record)}
            if "a" in record["_locked"]:
                raise rejected("invalid_state", "both legs are locked: it can only be delivered")
            expires = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()
            if record["status"] != "refused" and self.network.clock() < expires:
                raise rejected("not_expired", "the offer stands")
            leg = record["legs"]["p"]
            self._credit(self._account(record["_details"]["payer_account"]), leg["currency"], leg["amount"])
            self.network.supply[(self._msp_id, leg["currency"])] += leg["amount"]
            self._pvp_move(record, "refunded")
            return {"pvp_id": pvp_id, "status": "refunded", "refunded": True, "pvp": self._pvp_public(record)}

    def get_pvp(self, pvp_id: str, details: bool = False) -> JSON:
        self._call("GetPvp")
        with self.network.lock:
            return self._pvp_public(self._pvp(pvp_id), details)

    def list_open_pvps(self, limit: int) -> JSON:
        self._call("ListOpenPvps")
        with self.network.lock:
            found = [
                self._pvp_public(record)
                for record in self.network.pvps.values()
                if record["status"] in ("proposed", "locked", "refused")
                and self._msp_id in (record["legs"]["p"]["bank"], record["legs"]["a"]["bank"])
            ]
            return {"pvps": found[:limit]}

    def _payment(self, payment_id: str) -> JSON:
        payment = self.network.payments.get(payment_id)
        if payment is None:
            raise rejected("payment_not_found", "no such payment")
        return payment

    def _move(self, payment: JSON, status: str, event: str, reason: str = "") -> None:
        tx_id = self.network.next_tx()
        payment["status"] = status
        payload = {
            "payment_id": payment["payment_id"],
            "payer_bank": payment["payer_bank"],
            "payee_bank": payment["payee_bank"],
        }
        if reason:
            payment["reason"] = reason
            payload["reason"] = reason
        payment["timeline"].append({"status": status, "at": iso(self.network.clock()), "tx_id": tx_id})
        self.network.emit(tx_id, event, payload)

    def complete_payment(self, payment_id: str, payer_bank: str | None = None) -> JSON:
        self._call("CompletePayment")
        with self.network.lock:
            payment = self._payment(payment_id)
            if payment["payee_bank"] != self._msp_id:
                raise rejected("not_authorized", "only the payee bank completes a payment")
            if payment["status"] == "completed":
                return {"payment_id": payment_id, "status": "completed", "completed": False}
            if payment["status"] != "initiated":
                raise rejected("invalid_state", f"payment is {payment['status']}")
            account = self._account(payment["_details"]["payee_account"])
            if account["status"] != "active":
                raise rejected(f"account_{account['status']}", f"the payee account is {account['status']}")
            self._credit(account, payment["payee_currency"], payment["payee_amount"])
            key = (self._msp_id, payment["payee_currency"])
            self.network.supply[key] = self.network.supply.get(key, 0) + payment["payee_amount"]
            self._entry(
                account["account_id"],
                "payment_in",
                payment["payee_currency"],
                payment["payee_amount"],
                payment_id,
                payment_id,
            )
            self._move(payment, "completed", "PaymentCompleted")
            return {"status": "completed"}

    def reject_payment(self, payment_id: str, reason: str) -> JSON:
        self._call("RejectPayment")
        with self.network.lock:
            payment = self._payment(payment_id)
            if payment["payee_bank"] != self._msp_id:
                raise rejected("not_authorized", "only the payee bank rejects a payment")
            if payment["status"] == "rejected":
                return {"payment_id": payment_id, "status": "rejected", "rejected": False}
            if payment["status"] != "initiated":
                raise rejected("invalid_state", f"payment is {payment['status']}")
            self._move(payment, "rejected", "PaymentRejected", reason)
            return {"status": "rejected"}

    def refund_payment(self, payment_id: str) -> JSON:
        self._call("RefundPayment")
        with self.network.lock:
            payment = self._payment(payment_id)
            if payment["payer_bank"] != self._msp_id:
                raise rejected("not_authorized", "only the payer bank refunds a payment")
            if payment["status"] == "refunded":
                return {"payment_id": payment_id, "status": "refunded", "refunded": False}
            if payment["status"] == "initiated":
                if self.network.clock() - payment["created_epoch"] < self.network.payment_timeout:
                    raise rejected("not_expired", "the payment has not timed out yet")
                payment["reason"] = "expired"
            elif payment["status"] != "rejected":
                raise rejected("invalid_state", f"payment is {payment['status']}")
            account = self._books()[payment["_details"]["payer_account"]]
            self._credit(account, payment["currency"], payment["amount"])
            self.network.supply[(self._msp_id, payment["currency"])] += payment["amount"]
            self._entry(
                account["account_id"],
                "refund",
                payment["currency"],
                payment["amount"],
                payment_id,
                payment_id,
            )
            self._move(payment, "refunded", "PaymentRefunded")
            return {"status": "refunded"}

    def _public(self, payment: JSON, details: bool) -> JSON:
        record = {k: copy.deepcopy(v) for k, v in payment.items() if not k.startswith("_") and k != "created_epoch"}
        if details:
            if self._msp_id not in (payment["payer_bank"], payment["payee_bank"]):
                raise rejected("not_authorized", "only the payer and payee banks may read a payment's details")
            record["details"] = dict(payment["_details"])
        return record

    def get_payment(self, payment_id: str, details: bool = False) -> JSON:
        self._call("GetPayment")
        with self.network.lock:
            return self._public(self._payment(payment_id), details)

    def list_payments(self, bank: str | None, status: str | None, page_size: int, bookmark: str) -> JSON:
        self._call("ListPayments")
        with self.network.lock:
            items = [
                self._public(p, False)
                for p in self.network.payments.values()
                if (bank is None or bank in (p["payer_bank"], p["payee_bank"]))
                and (status is None or p["status"] == status)
            ]
            start = int(bookmark) if bookmark.isdigit() else 0
            more = start + page_size < len(items)
            return {
                "payments": items[start : start + page_size],
                "bookmark": str(start + page_size) if more else "",
            }

    # settlement ------------------------------------------------------------------------------------

    def open_settlement_cycle(self, cycle_id: str) -> JSON:
        self._call("OpenSettlementCycle")
        with self.network.lock:
            if cycle_id in self.network.cycles:
                raise rejected("duplicate_reference", "a cycle with this id exists")
            included = [p for p in self.network.payments.values() if p["status"] == "completed" and not p["cycle_id"]]
            if not included:
                raise rejected("nothing_to_settle", "no completed payment waits for settlement")
            positions: dict[str, dict[str, int]] = {}
            for p in included:
                ccy = p["payee_currency"]
                positions.setdefault(p["payer_bank"], {}).setdefault(ccy, 0)
                positions.setdefault(p["payee_bank"], {}).setdefault(ccy, 0)
                positions[p["payer_bank"]][ccy] -= p["payee_amount"]
                positions[p["payee_bank"]][ccy] += p["payee_amount"]
                p["cycle_id"] = cycle_id
            self.network.cycles[cycle_id] = {
                "cycle_id": cycle_id,
                "status": "open",
                "opened_by": self._msp_id,
                "opened_at": iso(self.network.clock()),
                "settled_at": None,
                "banks": sorted(positions),
                "positions": positions,
                "payments": [p["payment_id"] for p in included],
                "confirmations": {
                    bank: {"bank": bank, "confirmed": False, "external_ref": None, "at": None} for bank in positions
                },
            }
            return {"cycle_id": cycle_id, "positions": positions, "payments": len(included)}

    def confirm_settlement(self, cycle_id: str, external_ref: str) -> JSON:
        self._call("ConfirmSettlement")
        with self.network.lock:
            cycle = self.network.cycles.get(cycle_id)
            if cycle is None:
                raise rejected("cycle_not_found", "no such cycle")
            if self._msp_id not in cycle["banks"]:
                raise rejected("not_authorized", "this bank is not in the cycle")
            leg = cycle["confirmations"][self._msp_id]
            if leg["confirmed"]:
                if leg["external_ref"] == external_ref:
                    return {"cycle_id": cycle_id, "status": cycle["status"], "confirmed": False}
                raise rejected("already_confirmed", "this bank confirmed with another reference")
            leg.update(confirmed=True, external_ref=external_ref, at=iso(self.network.clock()))
            if all(item["confirmed"] for item in cycle["confirmations"].values()):
                cycle["status"] = "settled"
                cycle["settled_at"] = iso(self.network.clock())
            return {"cycle_id": cycle_id, "status": cycle["status"], "confirmed": True}

    def get_settlement_cycle(self, cycle_id: str) -> JSON:
        self._call("GetSettlementCycle")
        with self.network.lock:
            cycle = self.network.cycles.get(cycle_id)
            if cycle is None:
                raise rejected("cycle_not_found", "no such cycle")
            return copy.deepcopy(cycle)

    def list_settlement_cycles(self) -> JSON:
        self._call("ListSettlementCycles")
        with self.network.lock:
            return {"cycles": copy.deepcopy(list(self.network.cycles.values()))}

    # disclosure requests ---------------------------------------------------------------------------

    def _disclosure(self, request_id: str) -> JSON:
        record = self.network.disclosures.get(request_id)
        if record is None:
            raise rejected("disclosure_not_found", f"no disclosure request {request_id}")
        return record

    def list_disclosures(self, bank: str | None, status: str | None) -> JSON:
        self._call("ListDisclosures")
        with self.network.lock:
            found = [
                copy.deepcopy(r)
                for r in self.network.disclosures.values()
                if (bank is None or bank in r["answers"])
                and (status is None or any(a["status"] == status for b, a in r["answers"].items() if bank in (None, b)))
            ]
            return {"requests": found}

    def get_disclosure(self, request_id: str, details: bool = False) -> JSON:
        self._call("GetDisclosure")
        with self.network.lock:
            return copy.deepcopy(self._disclosure(request_id))

    def _answer(self, request_id: str, status: str, reason: str | None) -> JSON:
        with self.network.lock:
            answers = self._disclosure(request_id)["answers"]
            if self._msp_id not in answers:
                raise rejected("not_authorized", f"{self._msp_id} is not a party to the payment")
            answer = answers[self._msp_id]
            if answer["status"] != "pending":
                if answer["status"] == status:
                    return {"request_id": request_id, "status": status}
                raise rejected("invalid_state", f"{self._msp_id} already answered: {answer['status']}")
            answer.update(status=status, at=iso(self.network.clock()), tx_id=self.network.next_tx(), reason=reason)
            return {"request_id": request_id, "status": status}

    def approve_disclosure(self, request_id: str) -> JSON:
        self._call("ApproveDisclosure")
        return self._answer(request_id, "disclosed", None)

    def refuse_disclosure(self, request_id: str, reason: str) -> JSON:
        self._call("RefuseDisclosure")
        return self._answer(request_id, "refused", reason)

    # operations ------------------------------------------------------------------------------------

    def ping(self) -> None:
        self._call("ping")

    def channel_view(self) -> ChannelView:
        self._call("discover")
        height = len(self.network.events) + 1
        if self.network.channel_members is not None:
            return ChannelView(height - self.network.blocks_behind, dict(self.network.channel_members))
        return ChannelView(height - self.network.blocks_behind, {bank["msp_id"]: height for bank in BANKS})

    def events(self, start_block: int, after_transaction_id: str | None) -> Iterator[LedgerEvent]:
        if self.network.down:
            raise PeerUnreachable("peer down")
        return FakeEventStream(self.network, start_block, after_transaction_id)

    def close(self) -> None:
        return None

    def count(self, name: str) -> int:
        return sum(1 for msp, call in self.network.calls if msp == self._msp_id and call == name)


def stop_when(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; for waiting on background threads in tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
