"""A bank's books: customer accounts, balances, limits and history, in its private collection.

Only the bank's own peer holds the collection, and the collection-level endorsement
policy makes every write to it need that peer's endorsement, so no other bank can touch
these records even with altered chaincode.

Balances are kept so that a busy account scales:

- a **credit** never reads a balance: it blind-writes one new entry under the account
  (key ``credit/<account>/<unique id>``), so any number of payers can pay one merchant at
  once without a single MVCC conflict;
- a **debit** reads and writes the account's ``head`` (folded balances and today's
  spending), so concurrent debits of one account serialise on that key and MVCC
  validation turns every overdraft race into a conflict instead of a negative balance;
- a debit folds the pending credits it is given into the head and deletes them. Fabric
  refuses private-data range scans in a transaction that writes, so the credits to fold
  come from the caller (``GetAccount`` lists them as ``pending_credits``) and are point
  read here, which puts each in the read set. A credit the caller did not list is simply
  not spent yet;
- a balance *read* (a query) scans the credits, so it is exact: head plus every pending
  credit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaincode.deposit_token import keys
from chaincode.deposit_token.collections import books_collection
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record, decode, newest_first
from chaincode.deposit_token.reference import Bank

ACTIVE = "active"
FROZEN = "frozen"
CLOSED = "closed"


@dataclass
class Limits:
    per_transaction: int | None = None
    daily: int | None = None

    def as_record(self) -> Record:
        return {"per_transaction": self.per_transaction, "daily": self.daily}


@dataclass
class Account:
    holder: str
    jurisdiction: str
    kyc_ref: str
    status: str
    opened_at: str
    revision: str
    limits: dict[str, Limits] = field(default_factory=dict)
    freeze_reason: str | None = None

    @classmethod
    def from_record(cls, record: Record) -> Account:
        return cls(
            holder=record["holder"],
            jurisdiction=record["jurisdiction"],
            kyc_ref=record["kyc_ref"],
            status=record["status"],
            opened_at=record["opened_at"],
            revision=record["revision"],
            limits={
                ccy: Limits(item.get("per_transaction"), item.get("daily"))
                for ccy, item in record.get("limits", {}).items()
            },
            freeze_reason=record.get("freeze_reason"),
        )

    def as_record(self) -> Record:
        record: Record = {
            "holder": self.holder,
            "jurisdiction": self.jurisdiction,
            "kyc_ref": self.kyc_ref,
            "status": self.status,
            "opened_at": self.opened_at,
            "revision": self.revision,
            "limits": {ccy: limits.as_record() for ccy, limits in sorted(self.limits.items())},
        }
        if self.freeze_reason is not None:
            record["freeze_reason"] = self.freeze_reason
        return record

    def require_can_pay(self) -> None:
        if self.status == FROZEN:
            raise refusal("account_frozen", "the account to debit is frozen")
        if self.status == CLOSED:
            raise refusal("account_closed", "the account to debit is closed")

    def require_can_be_paid(self) -> None:
        if self.status == FROZEN:
            raise refusal("account_frozen", "the account to credit is frozen")
        if self.status == CLOSED:
            raise refusal("account_closed", "the account to credit is closed")


@dataclass
class Head:
    """What debits serialise on: folded balances and today's outgoing total per currency."""

    balances: dict[str, int] = field(default_factory=dict)
    day: str = ""
    spent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Record | None) -> Head:
        if record is None:
            return cls()
        return cls(dict(record.get("balances", {})), record.get("day", ""), dict(record.get("spent", {})))

    def as_record(self) -> Record:
        return {
            "balances": {ccy: amount for ccy, amount in sorted(self.balances.items())},
            "day": self.day,
            "spent": {ccy: amount for ccy, amount in sorted(self.spent.items())},
        }


class Books:
    """One bank's books within one transaction."""

    def __init__(self, ledger: Ledger, bank: Bank) -> None:
        self.ledger = ledger
        self.bank = bank
        self.collection = books_collection(bank.msp_id)

    # -- accounts --------------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        record = self.ledger.get_private(self.collection, keys.account(account_id))
        return None if record is None else Account.from_record(record)

    def require_account(self, account_id: str, field_name: str = "account_id") -> Account:
        account = self.account(account_id)
        if account is None:
            raise refusal("unknown_account", f"'{field_name}' names no account at {self.bank.msp_id}")
        return account

    def save_account(self, account_id: str, account: Account) -> None:
        # The revision lets a caller prove its view of the account is newer than a change.
        account.revision = self.ledger.tx_id
        self.ledger.put_private(self.collection, keys.account(account_id), account.as_record())

    def open_account(self, account_id: str, holder: str, jurisdiction: str, kyc_ref: str) -> bool:
        """Open an active account; ``False`` when the same account is already open (a retry)."""
        existing = self.account(account_id)
        if existing is not None:
            if (existing.holder, existing.jurisdiction, existing.kyc_ref) == (holder, jurisdiction, kyc_ref):
                return False
            raise refusal("account_exists", f"'account_id' is already used at {self.bank.msp_id}")
        account = Account(holder, jurisdiction, kyc_ref, ACTIVE, self.ledger.now_iso, self.ledger.tx_id)
        self.save_account(account_id, account)
        self.ledger.put_private(self.collection, keys.head(account_id), Head().as_record())
        return True

    # -- balances ----------------------------------------------------------------
    def head(self, account_id: str) -> Head:
        return Head.from_record(self.ledger.get_private(self.collection, keys.head(account_id)))

    def prefetch_balance(self, account_id: str, credit_ids: list[str], *, with_account: bool = False) -> None:
        """Read the head and the listed pending credits (and the account) in one request.

        Only before a debit, which reads them all anyway: a key read joins the read set.
        """
        account_keys = [keys.account(account_id)] if with_account else []
        credit_keys = [keys.credit(account_id, credit_id) for credit_id in credit_ids]
        self.ledger.prefetch_private(self.collection, [*account_keys, keys.head(account_id), *credit_keys])

    def save_head(self, account_id: str, head: Head) -> None:
        self.ledger.put_private(self.collection, keys.head(account_id), head.as_record())

    def fold(self, account_id: str, head: Head, credit_ids: list[str]) -> None:
        """Add the listed pending credits to ``head`` and delete them.

        Absent ids (already folded by an earlier debit, or never committed) are skipped:
        an earlier fold also rewrote the head this transaction read, so the read set
        still describes exactly what was folded.
        """
        credit_keys = [keys.credit(account_id, credit_id) for credit_id in credit_ids]
        for credit_key, record in zip(
            credit_keys, self.ledger.get_private_many(self.collection, credit_keys), strict=True
        ):
            if record is None:
                continue
            currency = record["currency"]
            head.balances[currency] = head.balances.get(currency, 0) + int(record["amount"])
            self.ledger.delete_private(self.collection, credit_key)

    def credit(
        self,
        account_id: str,
        currency: str,
        amount: int,
        kind: str,
        reference: str,
        payment_id: str | None = None,
    ) -> str:
        """Blind-write one credit entry (and its history entry); returns the credit id."""
        credit_id = self.ledger.unique_id()
        self.ledger.put_private(
            self.collection, keys.credit(account_id, credit_id), {"currency": currency, "amount": amount}
        )
        self.record_entry(account_id, kind, currency, amount, reference, payment_id)
        return credit_id

    def debit(
        self,
        account_id: str,
        account: Account,
        currency: str,
        amount: int,
        *,
        kind: str,
        reference: str,
        pending_credits: list[str],
        apply_limits: bool,
        payment_id: str | None = None,
    ) -> None:
        """Take ``amount`` from the account, or refuse naming why. Reads and writes the head."""
        account.require_can_pay()
        self.prefetch_balance(account_id, pending_credits)
        head = self.head(account_id)
        self.fold(account_id, head, pending_credits)
        today = self.ledger.now.date().isoformat()
        if head.day != today:
            head.day, head.spent = today, {}
        if apply_limits:
            limits = account.limits.get(currency)
            if limits is not None and limits.per_transaction is not None and amount > limits.per_transaction:
                raise refusal(
                    "limit_exceeded",
                    f"the debit {amount} is above the per-transaction limit {limits.per_transaction} for {currency}",
                )
            spent = head.spent.get(currency, 0)
            if limits is not None and limits.daily is not None and spent + amount > limits.daily:
                raise refusal(
                    "limit_exceeded",
                    f"the debit {amount} would bring today's {currency} debits to {spent + amount}, "
                    f"above the daily limit {limits.daily}",
                )
            head.spent[currency] = spent + amount
        available = head.balances.get(currency, 0)
        if available < amount:
            hint = (
                ""
                if pending_credits
                else " (credits received since the last debit count once listed in 'pending_credits')"
            )
            raise refusal(
                "insufficient_funds",
                f"account balance {available} {currency} is below the debit {amount}{hint}",
            )
        head.balances[currency] = available - amount
        self.save_head(account_id, head)
        self.record_entry(account_id, kind, currency, -amount, reference, payment_id)

    def consolidate(self, account_id: str, pending_credits: list[str]) -> None:
        """Fold pending credits into the head without a debit (housekeeping for busy accounts)."""
        self.prefetch_balance(account_id, pending_credits)
        head = self.head(account_id)
        self.fold(account_id, head, pending_credits)
        self.save_head(account_id, head)

    def record_entry(
        self, account_id: str, kind: str, currency: str, amount: int, reference: str, payment_id: str | None
    ) -> None:
        entry: Record = {
            "tx_id": self.ledger.tx_id,
            "timestamp": self.ledger.now_iso,
            "kind": kind,
            "currency": currency,
            "amount": amount,
            "reference": reference,
        }
        if payment_id is not None:
            entry["payment_id"] = payment_id
        entry_key = keys.entry(account_id, newest_first(self.ledger.now), self.ledger.unique_id())
        self.ledger.put_private(self.collection, entry_key, entry)

    # -- queries (read-only transactions only) ---------------------------------
    def balances(self, account_id: str) -> tuple[dict[str, int], list[str]]:
        """Exact balances and the ids of pending (not yet folded) credits."""
        balances = dict(self.head(account_id).balances)
        pending: list[str] = []
        for credit_key, record in self.ledger.scan_private(self.collection, keys.CREDIT, account_id):
            if record is None:
                continue
            balances[record["currency"]] = balances.get(record["currency"], 0) + int(record["amount"])
            pending.append(self.ledger.stub.split_composite_key(credit_key)[1][1])
        return {ccy: amount for ccy, amount in sorted(balances.items())}, pending

    def totals(self) -> tuple[dict[str, int], int]:
        """What the bank owes its customers per currency (heads and pending credits); its account count."""
        totals: dict[str, int] = {}
        heads = 0
        for _, record in self.ledger.scan_private(self.collection, keys.HEAD):
            heads += 1
            for currency, amount in Head.from_record(record).balances.items():
                totals[currency] = totals.get(currency, 0) + amount
        for _, record in self.ledger.scan_private(self.collection, keys.CREDIT):
            if record is not None:
                totals[record["currency"]] = totals.get(record["currency"], 0) + int(record["amount"])
        return dict(sorted(totals.items())), heads

    def history(self, account_id: str, page_size: int, bookmark: str) -> tuple[list[Any], str]:
        start, end = keys.simple_prefix_range(keys.ENTRY, account_id)
        entries: list[Any] = []
        for entry_key, raw in self.ledger.scan_private_range(self.collection, resume_from(start, end, bookmark), end):
            if len(entries) == page_size:
                return entries, entry_key.encode("utf-8").hex()
            entries.append(decode(raw))
        return entries, ""


def resume_from(start: str, end: str, bookmark: str) -> str:
    """Where a page starts: the bookmark (hex of the first key of the page) or the range start."""
    if not bookmark:
        return start
    try:
        key = bytes.fromhex(bookmark).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise refusal("invalid_request", "'bookmark' was not returned by this query") from None
    if not start <= key < end:
        raise refusal("invalid_request", "'bookmark' was not returned by this query")
    return key
