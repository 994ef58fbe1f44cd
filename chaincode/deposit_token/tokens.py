"""Issue, redeem and intra-bank transfer: a bank's own tokens moving on its own books.

Each is idempotent by the reference the caller gives (the core banking system's deposit
or withdrawal reference, the client's transfer id): the first request takes effect, a
retry with the same content answers ``False`` and changes nothing, and a different
request under a used reference is refused. The reference record is read and written by
the transaction, so two concurrent requests with one reference cannot both commit.
"""

from __future__ import annotations

from chaincode.deposit_token import keys
from chaincode.deposit_token.accounts import Books
from chaincode.deposit_token.corridor import check_corridor
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.reference import Bank, require_active
from chaincode.deposit_token.supply import change_supply


def _require_issues(bank: Bank, currency: str) -> None:
    if not bank.issues(currency):
        raise refusal("currency_not_issued", f"{bank.msp_id} does not issue {currency} tokens")


def _first_use(ledger: Ledger, books: Books, reference_key: str, content: Record, field: str) -> bool:
    """``True`` if the reference is new; ``False`` for a retry of the same request."""
    used = ledger.get_private(books.collection, reference_key)
    if used is None:
        ledger.put_private(books.collection, reference_key, {**content, "tx_id": ledger.tx_id})
        return True
    if {name: used.get(name) for name in content} == content:
        return False
    raise refusal("duplicate_reference", f"'{field}' was already used for a different request")


def issue(ledger: Ledger, bank: Bank, account_id: str, currency: str, amount: int, deposit_ref: str) -> Record:
    _require_issues(bank, currency)
    books = Books(ledger, bank)
    ledger.prefetch_private(books.collection, [keys.account(account_id), keys.deposit(deposit_ref)])
    account = books.require_account(account_id)
    content = {"account_id": account_id, "currency": currency, "amount": amount}
    if not _first_use(ledger, books, keys.deposit(deposit_ref), content, "deposit_ref"):
        return {"issued": False}
    require_active(bank, "it may not issue new tokens")
    account.require_can_be_paid()
    books.credit(account_id, currency, amount, "issue", deposit_ref)
    change_supply(ledger, bank.msp_id, currency, amount)
    ledger.emit("Issued", {"issuer": bank.msp_id, "currency": currency, "amount": amount})
    return {"issued": True}


def redeem(
    ledger: Ledger,
    bank: Bank,
    account_id: str,
    currency: str,
    amount: int,
    withdrawal_ref: str,
    pending_credits: list[str],
) -> Record:
    _require_issues(bank, currency)
    books = Books(ledger, bank)
    ledger.prefetch_private(books.collection, [keys.account(account_id), keys.withdrawal(withdrawal_ref)])
    account = books.require_account(account_id)
    content = {"account_id": account_id, "currency": currency, "amount": amount}
    if not _first_use(ledger, books, keys.withdrawal(withdrawal_ref), content, "withdrawal_ref"):
        return {"redeemed": False}
    books.debit(
        account_id, account, currency, amount,
        kind="redeem", reference=withdrawal_ref, pending_credits=pending_credits, apply_limits=False,
    )  # fmt: skip
    change_supply(ledger, bank.msp_id, currency, -amount)
    ledger.emit("Redeemed", {"issuer": bank.msp_id, "currency": currency, "amount": amount})
    return {"redeemed": True}


def transfer(
    ledger: Ledger,
    bank: Bank,
    from_account: str,
    to_account: str,
    currency: str,
    amount: int,
    transfer_id: str,
    pending_credits: list[str],
) -> Record:
    """Debit and credit in one transaction on the bank's books: final when committed."""
    if from_account == to_account:
        raise refusal("invalid_request", "'from_account' and 'to_account' must differ")
    _require_issues(bank, currency)
    books = Books(ledger, bank)
    ledger.prefetch_private(
        books.collection, [keys.account(from_account), keys.account(to_account), keys.transfer(transfer_id)]
    )
    payer = books.require_account(from_account, "from_account")
    payee = books.require_account(to_account, "to_account")
    content = {"from_account": from_account, "to_account": to_account, "currency": currency, "amount": amount}
    if not _first_use(ledger, books, keys.transfer(transfer_id), content, "transfer_id"):
        return {"transferred": False}
    require_active(bank, "no new transfer within it is accepted")
    payee.require_can_be_paid()
    check_corridor(ledger, currency, payer.jurisdiction, payee.jurisdiction)
    books.debit(
        from_account, payer, currency, amount,
        kind="transfer_out", reference=transfer_id, pending_credits=pending_credits, apply_limits=True,
    )  # fmt: skip
    books.credit(to_account, currency, amount, "transfer_in", transfer_id)
    ledger.emit("Transferred", {"bank": bank.msp_id, "currency": currency})
    return {"transferred": True}
