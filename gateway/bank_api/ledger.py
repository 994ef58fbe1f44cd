"""The ledger port: everything the gateway asks of the deposit-token contract.

The HTTP layer, the incoming-payment follower and the webhooks speak only to this
Protocol. ``FabricLedger`` implements it on our Fabric client against the bank's
peer; unit tests use an in-memory fake. Methods take and return plain JSON-shaped
values in integer minor units, exactly as the contract does (docs/contract-api.md).

Customer data (account ids, holders, KYC references, remittance text) is passed to
the contract in the transient map by the implementation, never as an argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

JSON = dict[str, Any]


class LedgerError(Exception):
    """Base of every failure the ledger port reports."""


class ContractRejected(LedgerError):
    """The contract refused the request; ``code`` is its stable code, ``status`` 400/403/404/409."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.status = status


class LedgerUnavailable(LedgerError):
    """The ledger cannot take the request right now; the same request may succeed later.

    ``code`` is the problem code the HTTP layer answers with (503, ``Retry-After: retry_after``);
    ``public_detail`` what it tells the client. Each subclass is one reason, so that an operator
    and a client can tell a dead peer from a busy account. When a write's fate is unknown (it may
    still commit), repeating the *same* request (same Idempotency-Key) is safe and finds it.
    """

    code = "ledger_unavailable"
    public_detail = "the bank's ledger cannot take the request right now; retry later"
    default_retry_after = 5

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class PeerUnreachable(LedgerUnavailable):
    """This bank's own peer does not answer (down, restarting, or the network to it is cut)."""

    code = "peer_unreachable"
    public_detail = "the bank's ledger peer cannot be reached right now; retry later"
    default_retry_after = 5


class ChaincodeUnavailable(LedgerUnavailable):
    """The peer answers, but this bank's chaincode server does not (down or restarting)."""

    code = "chaincode_unavailable"
    public_detail = "the bank's deposit-token chaincode is not running right now; retry later"
    default_retry_after = 5


class CounterpartyUnreachable(LedgerUnavailable):
    """The other bank's peer cannot be reached, so the payment's details cannot be handed to it."""

    code = "counterparty_unreachable"
    public_detail = "the payee's bank cannot be reached right now; the payment was not made; retry later"
    default_retry_after = 10

    def __init__(self, message: str, counterparty: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, retry_after)
        self.counterparty = counterparty


class Contention(LedgerUnavailable):
    """Other transactions kept changing what this one read (read conflicts) through every retry."""

    code = "contention"
    public_detail = "the account is busy with other transactions; retry in a moment"
    default_retry_after = 1


class OrderingUnavailable(LedgerUnavailable):
    """The ordering service did not take the transaction, or did not commit it in time."""

    code = "ordering_unavailable"
    public_detail = (
        "the ledger's ordering service did not confirm the transaction in time; "
        "repeat the same request (same Idempotency-Key) to learn its outcome"
    )
    default_retry_after = 2


class Overloaded(LedgerUnavailable):
    """The gateway already has as many writes in flight as it takes (its own cap on write requests,
    or its Fabric connection's bound on submissions): refused before any ledger work, nothing done."""

    code = "overloaded"
    public_detail = (
        "the bank's gateway is handling as many writes as it can take; nothing was done; "
        "retry after the given delay (the same Idempotency-Key is fine)"
    )
    default_retry_after = 1


# Every reason a request may be answered 503, most specific first (the OpenAPI document lists them).
UNAVAILABLE_REASONS: tuple[type[LedgerUnavailable], ...] = (
    PeerUnreachable,
    ChaincodeUnavailable,
    CounterpartyUnreachable,
    Contention,
    OrderingUnavailable,
    Overloaded,
    LedgerUnavailable,
)


class LedgerFailure(LedgerError):
    """Anything else: an invalid transaction, a chaincode crash, an answer we cannot read."""


# The contract's stable codes and the HTTP status each one maps to (docs/contract-api.md).
CONTRACT_CODES: dict[str, int] = {
    "invalid_request": 400,
    "invalid_amount": 400,
    "unknown_currency": 400,
    "unknown_bank": 404,
    "unknown_account": 404,
    "account_exists": 409,
    "account_frozen": 409,
    "bank_suspended": 409,
    "account_closed": 409,
    "account_not_empty": 409,
    "insufficient_funds": 409,
    "limit_exceeded": 409,
    "corridor_cap_exceeded": 409,
    "corridor_forbidden": 403,
    "currency_not_issued": 403,
    "not_authorized": 403,
    "duplicate_reference": 409,
    "payment_not_found": 404,
    "escrow_not_found": 404,
    "pvp_not_found": 404,
    "details_not_here": 404,
    "invalid_state": 409,
    "not_expired": 409,
    "cycle_not_found": 404,
    "disclosure_not_found": 404,
    "nothing_to_settle": 409,
    "already_confirmed": 409,
    # InitiatePayments refused because some of its items were: the ledger port takes those out and
    # submits the rest (fabric_ledger._initiate_group); a caller never sees this code.
    "group_refused": 409,
}

_CODED_MESSAGE = re.compile(r"\[(?P<code>[a-z][a-z0-9_]{1,40})\]\s*(?P<message>.*)", re.DOTALL)
_CHAINCODE_STATUS = re.compile(r"chaincode response (?P<status>\d{3})")


def parse_contract_error(text: str) -> ContractRejected | None:
    """Find a ``[code] message`` contract error inside a peer's error text, if there is one.

    Peers wrap chaincode errors (``chaincode response 409, [insufficient_funds] ...``); only
    a 4xx chaincode response or a known code counts as a rejection, so a crashing chaincode
    (500) is never reported as the caller's fault.
    """
    status_match = _CHAINCODE_STATUS.search(text)
    chaincode_status = int(status_match.group("status")) if status_match else None
    coded = _CODED_MESSAGE.search(text)
    if coded is None:
        return None
    code = coded.group("code")
    message = coded.group("message").strip()
    if chaincode_status is not None and chaincode_status >= 500:
        return None
    if chaincode_status is not None and 400 <= chaincode_status < 500:
        return ContractRejected(code, message, chaincode_status)
    status = CONTRACT_CODES.get(code)
    if status is None:
        return None
    return ContractRejected(code, message, status)


@dataclass(frozen=True)
class LedgerEvent:
    """One chaincode event, with where it sits in the chain (for checkpoints)."""

    block_number: int
    transaction_id: str
    name: str
    payload: JSON


@dataclass(frozen=True)
class ChannelView:
    """What this bank's peer knows of the channel, for readiness.

    ``height`` is the peer's own ledger height; ``members`` maps each organisation whose peers the
    peer sees through gossip to the highest ledger height it knows of them (0 when not yet known).
    Until a restarted peer sees the other banks' peers it cannot hand them a payment's details.
    """

    height: int
    members: dict[str, int]


class Ledger(Protocol):
    """The deposit-token contract as seen from one bank's gateway."""

    @property
    def msp_id(self) -> str:
        """The bank this gateway speaks for."""
        ...

    # reference data and supply (public)
    def get_reference_data(self) -> JSON: ...
    def get_supply(self) -> JSON: ...
    def get_supply_changes(self, currency: str, page_size: int) -> JSON: ...
    def fold_supply(self, currency: str, change_ids: list[str]) -> JSON: ...

    # accounts (our own books)
    def open_account(self, account_id: str, holder: str, jurisdiction: str, kyc_ref: str) -> JSON: ...
    def freeze_account(self, account_id: str, reason: str) -> JSON: ...
    def unfreeze_account(self, account_id: str) -> JSON: ...
    def close_account(self, account_id: str) -> JSON: ...
    def set_limits(self, account_id: str, currency: str, per_transaction: int | None, daily: int | None) -> JSON: ...
    def get_account(self, account_id: str) -> JSON: ...
    def get_account_history(self, account_id: str, page_size: int, bookmark: str) -> JSON: ...

    # money in and out of our books
    def issue(self, account_id: str, currency: str, amount: int, deposit_ref: str) -> JSON: ...
    def redeem(self, account_id: str, currency: str, amount: int, withdrawal_ref: str) -> JSON: ...
    def transfer(self, from_account: str, to_account: str, currency: str, amount: int, transfer_id: str) -> JSON: ...

    # interbank payments
    def initiate_payment(self, request: JSON) -> JSON: ...
    def complete_payment(self, payment_id: str, payer_bank: str | None = None) -> JSON: ...
    def reject_payment(self, payment_id: str, reason: str) -> JSON: ...
    def refund_payment(self, payment_id: str) -> JSON: ...
    def get_payment(self, payment_id: str, details: bool = False) -> JSON: ...
    def list_payments(self, bank: str | None, status: str | None, page_size: int, bookmark: str) -> JSON: ...

    # escrow (in our books)
    def lock_escrow(self, request: JSON) -> JSON: ...
    def release_escrow(self, request: JSON) -> JSON: ...
    def expire_escrow(self, escrow_id: str) -> JSON: ...
    def get_escrow(self, escrow_id: str) -> JSON: ...
    def list_due_escrows(self, limit: int) -> JSON: ...

    # payment versus payment (public record, details in the two banks' collection)
    def propose_pvp(self, request: JSON) -> JSON: ...
    def accept_pvp(self, pvp_id: str, payer_account: str) -> JSON: ...
    def refuse_pvp(self, pvp_id: str, reason: str) -> JSON: ...
    def deliver_pvp_leg(self, pvp_id: str) -> JSON: ...
    def refund_pvp_leg(self, pvp_id: str) -> JSON: ...
    def get_pvp(self, pvp_id: str, details: bool = False) -> JSON: ...
    def list_open_pvps(self, limit: int) -> JSON: ...

    # settlement (public)
    def open_settlement_cycle(self, cycle_id: str) -> JSON: ...
    def confirm_settlement(self, cycle_id: str, external_ref: str) -> JSON: ...
    def get_settlement_cycle(self, cycle_id: str) -> JSON: ...
    def list_settlement_cycles(self) -> JSON: ...

    # disclosure requests addressed to this bank (the regulator files them)
    def list_disclosures(self, bank: str | None, status: str | None) -> JSON: ...
    def get_disclosure(self, request_id: str, details: bool = False) -> JSON: ...
    def approve_disclosure(self, request_id: str) -> JSON: ...
    def refuse_disclosure(self, request_id: str, reason: str) -> JSON: ...

    # operations
    def ping(self) -> None:
        """Raise LedgerUnavailable/LedgerFailure unless the peer answers and the chaincode runs."""
        ...

    def channel_view(self) -> ChannelView:
        """The peer's ledger height and the channel's members it sees; raises LedgerUnavailable."""
        ...

    def events(self, start_block: int, after_transaction_id: str | None) -> Iterator[LedgerEvent]:
        """Chaincode events from ``start_block`` on, skipping up to and including the given tx.

        The iterator blocks waiting for new events; it ends (or raises LedgerUnavailable) when the
        connection drops, and the caller resumes from its checkpoint.
        """
        ...

    def close(self) -> None: ...


class OversightLedger(Protocol):
    """The contract as the regulator's gateway sees it: public records, the corridor policy it sets
    and the disclosures it requests.

    Nothing here reads a bank's books, and a payment's private details reach the regulator only
    when a bank discloses them on a request (``get_disclosure``).
    """

    @property
    def msp_id(self) -> str: ...

    def get_reference_data(self) -> JSON: ...
    def get_supply(self) -> JSON: ...
    def search_payments(self, query: JSON) -> JSON:
        """``ListPayments`` with any of its filters (docs/contract-api.md)."""
        ...

    def get_payment(self, payment_id: str, details: bool = False) -> JSON: ...
    def get_settlement_cycle(self, cycle_id: str) -> JSON: ...
    def list_settlement_cycles(self) -> JSON: ...
    def get_corridor_policy(self) -> JSON: ...
    def get_corridor_policy_history(self) -> JSON: ...
    def set_corridor_policy(self, policy: JSON) -> JSON: ...
    def request_disclosure(self, payment_id: str, legal_basis: str) -> JSON: ...
    def get_disclosure(self, request_id: str, details: bool = False) -> JSON:
        """With ``details``, what each bank delivered: the one view that carries customer data."""
        ...

    def list_disclosures(self, bank: str | None, status: str | None) -> JSON: ...
    def ping(self) -> None: ...
    def channel_view(self) -> ChannelView: ...
    def events(self, start_block: int, after_transaction_id: str | None) -> Iterator[LedgerEvent]: ...
    def close(self) -> None: ...
