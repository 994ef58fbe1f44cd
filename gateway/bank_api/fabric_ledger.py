"""The ledger port on the real network: the deposit-token chaincode through our Fabric client.

Every write is endorsed by this bank's own peer only (``endorsing_organizations=[own MSP]``)
and returns after it committed; read conflicts are retried with a fresh transaction, and a
transaction not committed within a few seconds is looked up and run again under the same
business reference (``submit_idempotent``). Private input travels in the transient map under
``request``.
Debits are first tried against the account's folded balance alone; only a refusal for
insufficient funds makes the gateway read the account's ``pending_credits`` and try again
with them, so received money is still spendable (docs/contract-api.md, "Balances, credits and
pending_credits") without a query before every debit (docs/decisions/0011).

Failures are translated once, here: a contract refusal keeps its code; what the caller may
retry becomes a ``LedgerUnavailable`` naming its reason (our peer unreachable, our chaincode
down, the other bank's peer unreachable, contention, the ordering service; every write is
idempotent by its reference, so a retry is safe); anything else is ``LedgerFailure``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from fabric_client import (
    CommitError,
    CommitStatusError,
    Contract,
    Deadlines,
    Gateway,
    GatewayError,
    GroupCommit,
    SubmitError,
    submit_idempotent,
)
from fabric_client import Overloaded as ClientOverloaded
from fabric_client.errors import RETRYABLE_VALIDATION_CODES
from fabric_client.profile import connect_org
from fabric_protos.peer import transaction_pb2

from gateway.bank_api.config import ConfigError, GatewayConfig
from gateway.bank_api.ledger import (
    CONTRACT_CODES,
    JSON,
    ChaincodeUnavailable,
    ChannelView,
    Contention,
    ContractRejected,
    CounterpartyUnreachable,
    LedgerError,
    LedgerEvent,
    LedgerFailure,
    LedgerUnavailable,
    OrderingUnavailable,
    Overloaded,
    PeerUnreachable,
    parse_contract_error,
)
from gateway.bank_api.metrics import GatewayMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_KEY = "request"
# A details salt as the contract accepts it (chaincode/deposit_token/payments.py, SALT).
_SALT = re.compile(r"^(?:[0-9a-f]{2}){16,64}$")
MAX_PENDING_CREDITS = 1000
SUBMIT_ATTEMPTS = 6
DEFAULT_SUBMIT_DEADLINE = 30.0
DEFAULT_COMMIT_WAIT = 5.0
# The payee bank's peer reports a payment's initiation as soon as it commits the block; the payer
# bank's peer, which holds the details, commits the same block a few to a few hundred milliseconds
# apart. Asked in that moment it does not have them yet: asking again after these pauses (1.5 s in
# all) completes the payment at once instead of after the task queue's retry, seconds later.
DETAILS_NOT_YET_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.75)
ENDORSEMENT_POLICY_FAILURE = int(transaction_pb2.ENDORSEMENT_POLICY_FAILURE)
PING_TIMEOUT_SECONDS = 3.0
# Completions of incoming payments go to the ledger in groups (``GroupCommit``, decision 0037): at
# most this many per CompletePayments transaction (the contract's MAX_COMPLETION_GROUP) ...
COMPLETION_GROUP = 50
# ... and this many such transactions in flight at once: whatever is ready while they are waits
# for the next one. More in flight means smaller groups (each one's fixed price paid more often);
# fewer, that a slow commit holds more completions.
COMPLETION_GROUPS_IN_FLIGHT = 5
# Payer banks whose peers a gateway asks for details in groups (one ``GroupCommit`` each).
MAX_DETAILS_GROUPS = 64
# Outgoing payments go to the ledger in groups too (decision 0038): at most this many per
# InitiatePayments transaction (the contract's MAX_INITIATION_GROUP) and this many such
# transactions in flight. Fewer than for completions: the payment requests waiting at once are
# bounded by the HTTP server's write cap (``max_concurrent_writes``), and the more groups in
# flight, the fewer requests meet in each.
INITIATION_GROUP = 50
INITIATION_GROUPS_IN_FLIGHT = 2
# Rounds of an initiation group: after a ``group_refused`` the rest goes again without the refused
# items, and only a concurrent change makes that refuse again; after this many, each goes alone.
INITIATION_ROUNDS = 3

_UNAVAILABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
# Invalid commits a fresh run may clear: read conflicts, and a state-based policy a concurrent
# transaction tightened (the same payment moved on by another worker, say). Only read conflicts that
# outlast the retries are reported as contention: a policy failure that persists is a real refusal.
CONTENTION_CODES = frozenset(RETRYABLE_VALIDATION_CODES | {ENDORSEMENT_POLICY_FAILURE})

# What the peer says when it cannot hand a private collection's data to another org's peer, naming
# the collection. No collection requires it since decision 0031, and none is shared by a pair of
# banks since 0036; a network deployed with bilateral collections can still say it.
_DISSEMINATION = re.compile(
    r"(failed to distribute private collection|required to disseminate to at least)"
    r"(?:.*?collection (?P<collection>[A-Za-z0-9_.-]+))?",
    re.DOTALL,
)
# What the peer says when its chaincode server does not answer (down, restarting, or hung).
_CHAINCODE_DOWN = re.compile(
    r"could not launch chaincode|chaincode stream terminated|timeout expired while executing transaction",
    re.IGNORECASE,
)


def _counterparty(collection: str | None, own_msp: str) -> str | None:
    if not collection or not collection.startswith("bilateral-"):
        return None
    others = [msp for msp in collection.removeprefix("bilateral-").split("-") if msp and msp != own_msp]
    return others[0] if len(others) == 1 else None


def translate(error: GatewayError, own_msp: str = "") -> LedgerError:
    """One Fabric client error → the port's error (each reason its own type, see ledger.py)."""
    if isinstance(error, ClientOverloaded):
        # Refused by our own client before anything was sent: HTTP wants whole seconds, at least one.
        return Overloaded(str(error), retry_after=max(1, math.ceil(error.retry_after)))
    if error.chaincode_status is not None:
        if 400 <= error.chaincode_status < 500:
            rejected = parse_contract_error(
                f"chaincode response {error.chaincode_status}, {error.chaincode_message or ''}"
            )
            if rejected is not None:
                return rejected
            code = error.reason or "invalid_request"
            return ContractRejected(code, error.chaincode_message or code, error.chaincode_status)
        return LedgerFailure(f"chaincode failed with status {error.chaincode_status}")
    if isinstance(error, CommitError):
        if error.is_retryable:
            return Contention(f"read conflicts persisted through every retry ({error.code_name})")
        return LedgerFailure(f"transaction invalid: {error.code_name}")
    said = "\n".join([error.message, *(detail.message for detail in error.details)])
    disseminate = _DISSEMINATION.search(said)
    if disseminate is not None:
        counterparty = _counterparty(disseminate.group("collection"), own_msp)
        return CounterpartyUnreachable(
            f"private data could not reach {counterparty or 'the other bank'}'s peer", counterparty
        )
    if _CHAINCODE_DOWN.search(said):
        return ChaincodeUnavailable(f"{error.operation} failed: the chaincode does not answer")
    if isinstance(error, CommitStatusError) and error.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED:
        # Submitted, then neither committed in time nor found on the ledger: its fate is unknown.
        return OrderingUnavailable(f"{error.operation} did not complete: {error.grpc_code}")
    if error.grpc_code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not error.details:
        # No node's details: the call never got an answer from our own peer.
        return PeerUnreachable(f"{error.operation} failed: {error.grpc_code}: the peer does not answer")
    if isinstance(error, CommitStatusError | SubmitError):
        return OrderingUnavailable(f"{error.operation} did not complete: {error.grpc_code}")
    if error.grpc_code in _UNAVAILABLE_CODES:
        return LedgerUnavailable(f"{error.operation} failed: {error.grpc_code}")
    return LedgerFailure(f"{error.operation} failed: {error.grpc_code}")


def _decode(raw: bytes, what: str) -> JSON:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerFailure(f"{what} returned something that is not JSON") from exc
    if not isinstance(value, dict):
        raise LedgerFailure(f"{what} returned JSON that is not an object")
    return value


class ChaincodeEventFeed:
    """Chaincode events as ``LedgerEvent``s; ``close()`` ends the stream from any thread."""

    def __init__(self, stream: Any, msp_id: str = "") -> None:
        self._stream = stream
        self._msp = msp_id
        self._events = self._generate()

    def _generate(self) -> Iterator[LedgerEvent]:
        try:
            for event in self._stream:
                try:
                    payload = json.loads(event.payload) if event.payload else {}
                except (UnicodeDecodeError, json.JSONDecodeError):
                    payload = {}
                yield LedgerEvent(
                    block_number=event.block_number,
                    transaction_id=event.transaction_id,
                    name=event.event_name,
                    payload=payload if isinstance(payload, dict) else {},
                )
        except GatewayError as error:
            raise translate(error, self._msp) from None

    def __iter__(self) -> ChaincodeEventFeed:
        return self

    def __next__(self) -> LedgerEvent:
        return next(self._events)

    def close(self) -> None:
        self._stream.close()


class _NotThereYet(LedgerFailure):
    """The other bank's peer does not hold the details (yet): it may commit their block a moment later."""


class _SubmitAlone(LedgerFailure):
    """A group of completions or initiations failed as a whole: each is submitted again on its own,
    so that one payment the contract cannot judge holds up no other."""


def _group_refusals(refused: ContractRejected, size: int) -> dict[int, ContractRejected] | None:
    """The items an ``InitiatePayments`` refused (``group_refused``: JSON naming each one by position),
    as the ``ContractRejected`` each would have got alone; ``None`` if the answer cannot be read so."""
    try:
        # A peer may add text after the chaincode's message: read the JSON value it starts with.
        listed, _ = json.JSONDecoder().raw_decode(refused.message)
    except ValueError:
        return None
    items = listed.get("refused") if isinstance(listed, dict) else None
    if not isinstance(items, list) or not items:
        return None
    found: dict[int, ContractRejected] = {}
    for item in items:
        position = item.get("position") if isinstance(item, dict) else None
        outcome = _completion_outcome({"error": item}) if isinstance(item, dict) else None
        if (
            isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < size
            or not isinstance(outcome, ContractRejected) or outcome.code == "group_refused"
        ):  # fmt: skip
            return None
        found[position] = outcome
    return found


def _completion_outcome(result: object) -> JSON | BaseException:
    """One item of CompletePayments' ``results`` (or GetPaymentsDetails' ``details``): the answer
    the single call would give, or its refusal."""
    if not isinstance(result, dict):
        return _SubmitAlone("a group's answer for one item is not an object")
    error = result.get("error")
    if error is None:
        return result
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(code, str) or not isinstance(message, str):
        return _SubmitAlone("a group's answer for one item is an error without a code")
    return ContractRejected(code, message, CONTRACT_CODES.get(code, 409))


class FabricLedger:
    # How the completion path waits between asks for details not committed yet; tests replace it.
    pause: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(
        self,
        gateway: Gateway,
        msp_id: str,
        channel: str = "tokens",
        chaincode: str = "deposit_token",
        commit_timeout: float | None = None,
        metrics: GatewayMetrics | None = None,
        commit_wait: float = DEFAULT_COMMIT_WAIT,
        completion_group: int = COMPLETION_GROUP,
        initiation_group: int = INITIATION_GROUP,
    ) -> None:
        self.metrics = metrics or GatewayMetrics()
        self.gateway = gateway
        self._msp_id = msp_id
        self.network = gateway.get_network(channel)
        self.chaincode = chaincode
        self.contract: Contract = self.network.get_contract(chaincode)
        self.commit_timeout = commit_timeout
        self.commit_wait = commit_wait
        self._start_groups(completion_group, initiation_group)

    @classmethod
    def from_config(cls, config: GatewayConfig, metrics: GatewayMetrics | None = None) -> FabricLedger:
        if not config.profile_path:
            raise ConfigError("the Fabric ledger needs profile_path (BANK_API_PROFILE or --profile)")
        if not 1 <= config.completion_group <= COMPLETION_GROUP:
            raise ConfigError(f"completion_group must be 1 to {COMPLETION_GROUP}, not {config.completion_group}")
        if not 1 <= config.initiation_group <= INITIATION_GROUP:
            raise ConfigError(f"initiation_group must be 1 to {INITIATION_GROUP}, not {config.initiation_group}")
        deadlines = Deadlines(
            evaluate=config.evaluate_timeout_seconds,
            endorse=config.submit_timeout_seconds,
            submit=config.submit_timeout_seconds,
            commit_status=config.submit_timeout_seconds,
        )
        try:
            gateway = connect_org(
                config.profile_path,
                config.msp_id,
                deadlines=deadlines,
                max_in_flight=config.ledger_max_in_flight or None,
                in_flight_wait=config.ledger_in_flight_wait_seconds,
            )
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"cannot connect as {config.msp_id} from {config.profile_path}: {error}") from error
        return cls(
            gateway,
            config.msp_id,
            config.channel,
            config.chaincode,
            config.submit_timeout_seconds,
            metrics,
            commit_wait=config.commit_wait_seconds,
            completion_group=config.completion_group,
            initiation_group=config.initiation_group,
        )

    @property
    def msp_id(self) -> str:
        return self._msp_id

    # -- plumbing ------------------------------------------------------------------

    def _guard(self, call: Callable[[], T], kind: str = "", transaction: str = "") -> T:
        try:
            if not kind:
                return call()
            with self.metrics.fabric_call(kind, transaction):
                return call()
        except GatewayError as error:
            translated = translate(error, self._msp_id)
            if not isinstance(translated, ContractRejected):
                log.warning("ledger call failed: %s", translated)
            raise translated from None

    def _transient(self, request: JSON | None) -> dict[str, bytes] | None:
        if request is None:
            return None
        return {TRANSIENT_KEY: json.dumps(request, separators=(",", ":")).encode()}

    def evaluate(
        self, name: str, *args: str, request: JSON | None = None, timeout: float | None = None, on: str | None = None
    ) -> JSON:
        """Run a query on this bank's peer, or with ``on`` on another org's peer (as this bank's client)."""
        raw = self._guard(
            lambda: self.contract.evaluate_transaction(
                name,
                *args,
                transient=self._transient(request),
                endorsing_organizations=[on or self._msp_id],
                timeout=timeout,
            ),
            "evaluate",
            name,
        )
        return _decode(raw, name)

    def submit(self, name: str, *args: str, request: JSON | None = None, follow_up: bool = False) -> JSON:
        """Submit and return once committed, within ``commit_timeout`` seconds in all.

        ``follow_up``: the second transaction of work whose first one committed (completing a
        payment or rejecting it, delivering a PvP's second leg, releasing an escrow). Over the connection's bound on
        submissions in flight it waits for a place ahead of new work instead of being refused
        (``fabric_client.inflight``): refusing it sheds no load, it leaves money debited and not
        yet credited.

        Every write of the contract is idempotent by its business reference (payment id, deposit
        reference, account id, state machine), so a transaction not committed within ``commit_wait``
        seconds (its orderer died, say) is looked up on the ledger and, when not there, submitted
        again (``submit_idempotent``): after a Raft leader dies, writes resume once a new one is
        elected instead of waiting out the whole deadline.
        """
        transient = self._transient(request)
        raw = self._guard(
            lambda: submit_idempotent(
                self.contract,
                name,
                *args,
                transient=transient,
                endorsing_organizations=[self._msp_id],
                commit_wait=self.commit_wait,
                deadline=self.commit_timeout or DEFAULT_SUBMIT_DEADLINE,
                attempts=SUBMIT_ATTEMPTS,
                retry_codes=CONTENTION_CODES,
                follow_up=follow_up,
            ),
            "submit",
            name,
        )
        return _decode(raw, name)

    def _spendable(self, account_id: str) -> JSON:
        """The account's revision and the credits a debit should fold (see the module docstring)."""
        account = self.get_account(account_id)
        pending = account.get("pending_credits") or []
        return {"pending_credits": list(pending)[:MAX_PENDING_CREDITS], "revision": account.get("revision")}

    # -- reference data -------------------------------------------------------------

    def get_reference_data(self) -> JSON:
        return self.evaluate("GetReferenceData")

    def get_supply(self) -> JSON:
        return self.evaluate("GetSupply")

    # -- accounts ----------------------------------------------------------------------

    def open_account(self, account_id: str, holder: str, jurisdiction: str, kyc_ref: str) -> JSON:
        return self.submit(
            "OpenAccount",
            request={
                "account_id": account_id,
                "holder": holder,
                "jurisdiction": jurisdiction,
                "kyc_ref": kyc_ref,
            },
        )

    def freeze_account(self, account_id: str, reason: str) -> JSON:
        return self.submit("FreezeAccount", request={"account_id": account_id, "reason": reason})

    def unfreeze_account(self, account_id: str) -> JSON:
        return self.submit("UnfreezeAccount", request={"account_id": account_id})

    def close_account(self, account_id: str) -> JSON:
        spendable = self._spendable(account_id)
        return self.submit("CloseAccount", request={"account_id": account_id, **spendable})

    def set_limits(self, account_id: str, currency: str, per_transaction: int | None, daily: int | None) -> JSON:
        return self.submit(
            "SetLimits",
            request={"account_id": account_id, "currency": currency, "per_transaction": per_transaction,
                     "daily": daily},
        )  # fmt: skip

    def get_account(self, account_id: str) -> JSON:
        return self.evaluate("GetAccount", request={"account_id": account_id})

    def get_account_history(self, account_id: str, page_size: int, bookmark: str) -> JSON:
        request: JSON = {"account_id": account_id, "page_size": page_size}
        if bookmark:
            request["bookmark"] = bookmark
        return self.evaluate("GetAccountHistory", request=request)

    # -- money ---------------------------------------------------------------------------

    def issue(self, account_id: str, currency: str, amount: int, deposit_ref: str) -> JSON:
        return self.submit(
            "Issue",
            request={
                "account_id": account_id,
                "currency": currency,
                "amount": amount,
                "deposit_ref": deposit_ref,
            },
        )

    def redeem(self, account_id: str, currency: str, amount: int, withdrawal_ref: str) -> JSON:
        return self._debit(
            "Redeem",
            account_id,
            {"account_id": account_id, "currency": currency, "amount": amount, "withdrawal_ref": withdrawal_ref},
        )

    def transfer(self, from_account: str, to_account: str, currency: str, amount: int, transfer_id: str) -> JSON:
        return self._debit(
            "Transfer",
            from_account,
            {"from_account": from_account, "to_account": to_account, "currency": currency,
             "amount": amount, "transfer_id": transfer_id},
        )  # fmt: skip

    def _debit(self, name: str, account_id: str, request: JSON, submit: Callable[[JSON], JSON] | None = None) -> JSON:
        """Submit a debit on the folded balance; on ``insufficient_funds``, again with the pending credits.

        The refused try changed nothing (it failed at endorsement), so the second is not a repeat.
        ``submit`` sends one request (default: a transaction ``name`` of its own).
        """
        send = submit or (lambda body: self.submit(name, request=body))
        try:
            return send({**request, "pending_credits": []})
        except ContractRejected as refused:
            if refused.code != "insufficient_funds":
                raise
            pending = self._spendable(account_id)["pending_credits"]
            if not pending:
                raise
        return send({**request, "pending_credits": pending})

    # -- payments --------------------------------------------------------------------------

    def initiate_payment(self, request: JSON) -> JSON:
        try:
            return self._debit("InitiatePayment", str(request["payer_account"]), request, self._initiate)
        except CounterpartyUnreachable as error:
            # Not every dissemination failure names the collection ("Failed disseminating 1 out of 1
            # private dissemination plans", when gossip still lists a peer that just died); the
            # payment's own payee bank is the one that could not be reached.
            if error.counterparty is None and isinstance(request.get("payee_bank"), str):
                error.counterparty = request["payee_bank"]
            raise

    def _counterparty_details(self, query: str, object_id: str, holder: str, what: str) -> JSON:
        """The details and salt of a payment or PvP, from the books of the bank ``holder`` on its own peer.

        No collection is shared by the two banks (docs/decisions/0036): the contract checks what
        comes back against the public hash before it acts on it. The other bank's peer may commit
        the block that wrote them a moment after ours: not found there yet is worth a retry.
        """
        try:
            group = self._details_group(holder) if query == "GetPaymentDetails" and self.completion_group > 1 else None
            given = group.run(object_id) if group is not None else self.evaluate(query, object_id, on=holder)
        except ContractRejected as refused:
            if refused.code in {"details_not_here", "payment_not_found", "pvp_not_found"}:
                raise _NotThereYet(f"{holder}'s peer does not hold the details of {what} yet") from refused
            raise
        except LedgerUnavailable as unavailable:
            # Our own peer answered (it routes the query); the other bank's did not.
            raise CounterpartyUnreachable(
                f"the details of {what} are in {holder}'s books and its peer cannot be reached", holder
            ) from unavailable
        return {"details": given.get("details"), "salt": given.get("salt")}

    def _details_once_committed(self, query: str, object_id: str, holder: str, what: str) -> JSON:
        """``_counterparty_details`` from a peer that did not hold them a moment ago, asked again after
        each of ``DETAILS_NOT_YET_PAUSES`` while it still does not; then its ``LedgerFailure``, and
        the task queue tries again later."""
        self.metrics.details_not_yet.inc()
        for pause in DETAILS_NOT_YET_PAUSES[:-1]:
            self.pause(pause)
            try:
                return self._counterparty_details(query, object_id, holder, what)
            except _NotThereYet:
                self.metrics.details_not_yet.inc()
        self.pause(DETAILS_NOT_YET_PAUSES[-1])
        return self._counterparty_details(query, object_id, holder, what)

    def _patient_details(self, query: str, object_id: str, holder: str, what: str) -> JSON:
        """``_counterparty_details``, and ``_details_once_committed`` when ``holder``'s peer does not
        hold them yet: a PvP is accepted as soon as the acceptor bank hears of it, the same race as a
        payment's completion."""
        try:
            return self._counterparty_details(query, object_id, holder, what)
        except _NotThereYet:
            return self._details_once_committed(query, object_id, holder, what)

    def _payer_to_complete(self, payment_id: str) -> str | None:
        """The payer bank of an initiated payment to this bank, from our peer; ``None`` otherwise."""
        try:
            record = self.get_payment(payment_id)
        except ContractRejected:
            return None
        if record.get("payee_bank") == self._msp_id and record.get("status") == "initiated":
            return str(record["payer_bank"])
        return None

    def complete_payment(self, payment_id: str, payer_bank: str | None = None) -> JSON:
        """Complete an incoming payment with the details from the payer bank's peer (decision 0036).

        ``payer_bank`` is the event's word for it and spares a read of the record; without it, or
        when the bank it names does not hold the details, the record on our peer says. A payment
        that is not an initiated one to this bank goes to the contract without details: its refusal
        (or its idempotent answer) is what the caller acts on.
        """
        request: JSON = {"payment_id": payment_id}
        holder = payer_bank if payer_bank is not None else self._payer_to_complete(payment_id)
        if holder is None or holder == self._msp_id:
            return self.submit("CompletePayment", request=request, follow_up=True)
        what = f"payment {payment_id}"
        try:
            details = self._counterparty_details("GetPaymentDetails", payment_id, holder, what)
        except (ContractRejected, LedgerFailure) as first:
            recorded = self._payer_to_complete(payment_id) if payer_bank is not None else None
            if recorded is not None and recorded != holder:
                details = self._counterparty_details("GetPaymentDetails", payment_id, recorded, what)
            elif isinstance(first, _NotThereYet):
                details = self._details_once_committed("GetPaymentDetails", payment_id, holder, what)
            else:
                raise
        request.update(details)
        if self.completion_group == 1:  # grouping off: alone, as many at once as the tasks run
            return self.submit("CompletePayment", request=request, follow_up=True)
        try:
            return self._completions.run(request)
        except _SubmitAlone:
            return self.submit("CompletePayment", request=request, follow_up=True)

    def _details_group(self, holder: str) -> GroupCommit[str, JSON] | None:
        """The asks for payments' details on ``holder``'s peer, in groups as the completions are: one
        ``GetPaymentsDetails`` query for the ids asked while others are in flight (decision 0037).

        None (ask alone) once ``MAX_DETAILS_GROUPS`` banks have one: the name comes from an event,
        which a bank running altered chaincode can fill with names that are no bank at all.
        """
        with self._details_groups_lock:
            group = self._details_groups.get(holder)
            if group is None:
                if len(self._details_groups) >= MAX_DETAILS_GROUPS:
                    return None
                group = self._details_groups[holder] = GroupCommit(
                    lambda ids: self._ask_details(holder, ids),
                    max_group=self.completion_group,
                    in_flight=COMPLETION_GROUPS_IN_FLIGHT,
                )
            return group

    def _ask_details(self, holder: str, ids: list[str]) -> list[JSON | BaseException]:
        if len(ids) == 1:
            try:
                return [self.evaluate("GetPaymentDetails", ids[0], on=holder)]
            except ContractRejected as refused:
                return [refused]
        answer = self.evaluate("GetPaymentsDetails", json.dumps({"payment_ids": ids}), on=holder)
        given = answer.get("details")
        if not isinstance(given, list) or len(given) != len(ids):
            raise LedgerFailure(f"GetPaymentsDetails on {holder}'s peer answered no result per payment")
        return [_completion_outcome(item) for item in given]

    def _initiate(self, request: JSON) -> JSON:
        """One payment request, initiated with those that arrive while others are in flight (decision
        0038); alone when grouping is off or its group could not be judged."""
        if self.initiation_group == 1:
            return self.submit("InitiatePayment", request=request)
        try:
            return self._initiations.run(request)
        except _SubmitAlone:
            return self.submit("InitiatePayment", request=request)

    def _initiate_group(self, requests: list[JSON]) -> list[JSON | BaseException]:
        """One InitiatePayment for one request, one InitiatePayments for several.

        The contract refuses a group with any refused item and names each (``group_refused``):
        those get their refusal, the rest goes again without them. Nothing of a refused group
        reached the ledger (it failed at endorsement), so the second try is no repeat.
        """
        outcomes: list[JSON | BaseException | None] = [None] * len(requests)
        waiting = list(range(len(requests)))
        for _ in range(INITIATION_ROUNDS):
            if len(waiting) == 1:
                try:
                    outcomes[waiting[0]] = self.submit("InitiatePayment", request=requests[waiting[0]])
                except LedgerError as failure:
                    outcomes[waiting[0]] = failure
                waiting = []
                break
            try:
                answer = self.submit("InitiatePayments", request={"payments": [requests[i] for i in waiting]})
            except ContractRejected as refused:
                refusals = _group_refusals(refused, len(waiting)) if refused.code == "group_refused" else None
                if refusals is None:
                    log.warning("a group of %d payments was refused (%s): each goes on its own", len(waiting), refused)
                    break
                for position, refusal in refusals.items():
                    outcomes[waiting[position]] = refusal
                waiting = [i for position, i in enumerate(waiting) if position not in refusals]
                if not waiting:
                    break
                continue
            except Contention as contended:
                # One item's account kept changing under the group: alone, the others are not held up.
                log.warning("a group of %d payments met contention (%s): each goes on its own", len(waiting), contended)
                break
            except LedgerUnavailable as unavailable:
                # Busy or out of reach, not a payment's fault: each caller answers it (503, Retry-After).
                for i in waiting:
                    outcomes[i] = unavailable
                waiting = []
                break
            except LedgerError as failure:
                log.warning("a group of %d payments failed (%s): each goes on its own", len(waiting), failure)
                break
            results = answer.get("results")
            if isinstance(results, list) and len(results) == len(waiting) and all(isinstance(r, dict) for r in results):
                for i, result in zip(waiting, results, strict=True):
                    outcomes[i] = result
                waiting = []
            break
        for i in waiting:
            outcomes[i] = _SubmitAlone("the payment's group could not be judged")
        return [outcome if outcome is not None else _SubmitAlone("no answer") for outcome in outcomes]

    def _start_groups(self, completion_group: int = COMPLETION_GROUP, initiation_group: int = INITIATION_GROUP) -> None:
        """The group commits of completions and of the details asks (decision 0037) and of initiations
        (decision 0038); each group size is the most one transaction or query carries (1: each alone,
        as before)."""
        self.initiation_group = initiation_group
        self._initiations: GroupCommit[JSON, JSON] = GroupCommit(
            self._initiate_group,
            max_group=initiation_group,
            in_flight=INITIATION_GROUPS_IN_FLIGHT,
            on_group=self.metrics.initiation_group.observe,
        )
        self.completion_group = completion_group
        self._completions: GroupCommit[JSON, JSON] = GroupCommit(
            self._complete_group,
            max_group=completion_group,
            in_flight=COMPLETION_GROUPS_IN_FLIGHT,
            on_group=self.metrics.completion_group.observe,
        )
        self._details_groups: dict[str, GroupCommit[str, JSON]] = {}
        self._details_groups_lock = threading.Lock()

    def _complete_group(self, requests: list[JSON]) -> list[JSON | BaseException]:
        """One CompletePayment for one request, one CompletePayments for several (decision 0037)."""
        if len(requests) == 1:
            try:
                return [self.submit("CompletePayment", request=requests[0], follow_up=True)]
            except LedgerError as failure:
                return [failure]
        try:
            answer = self.submit("CompletePayments", request={"payments": requests}, follow_up=True)
        except LedgerUnavailable:
            raise  # the way to the ledger, not a payment: every caller waits it out
        except LedgerError as failure:
            log.warning("a group of %d completions failed (%s): each goes on its own", len(requests), failure)
            return [_SubmitAlone(str(failure)) for _ in requests]
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(requests):
            return [_SubmitAlone("CompletePayments answered no result per payment") for _ in requests]
        return [_completion_outcome(result) for result in results]

    def reject_payment(self, payment_id: str, reason: str) -> JSON:
        return self.submit("RejectPayment", request={"payment_id": payment_id, "reason": reason}, follow_up=True)

    def refund_payment(self, payment_id: str) -> JSON:
        return self.submit("RefundPayment", request={"payment_id": payment_id})

    def get_payment(self, payment_id: str, details: bool = False) -> JSON:
        record = self.evaluate("GetPayment", payment_id, request={"details": True} if details else None)
        if details and record.get("details") is None and record.get("payee_bank") == self._msp_id:
            # Not completed yet, so not in this bank's books: the payer bank's peer has them.
            record["details"] = self._checked_details(
                "GetPaymentDetails", payment_id, str(record.get("payer_bank")), record, f"payment {payment_id}"
            )
        return record

    def list_payments(self, bank: str | None, status: str | None, page_size: int, bookmark: str) -> JSON:
        query: JSON = {"page_size": page_size}
        if bank:
            query["bank"] = bank
        if status:
            query["status"] = status
        if bookmark:
            query["bookmark"] = bookmark
        return self.evaluate("ListPayments", json.dumps(query, separators=(",", ":")))

    # -- escrow ----------------------------------------------------------------------------------

    def lock_escrow(self, request: JSON) -> JSON:
        return self._debit("LockEscrow", str(request["payer_account"]), request)

    def release_escrow(self, request: JSON) -> JSON:
        return self.submit("ReleaseEscrow", request=request, follow_up=True)

    def expire_escrow(self, escrow_id: str) -> JSON:
        return self.submit("ExpireEscrow", request={"escrow_id": escrow_id})

    def get_escrow(self, escrow_id: str) -> JSON:
        return self.evaluate("GetEscrow", request={"escrow_id": escrow_id})

    def list_due_escrows(self, limit: int) -> JSON:
        return self.evaluate("ListDueEscrows", str(limit))

    # -- supply housekeeping ---------------------------------------------------------------------

    def get_supply_changes(self, currency: str, page_size: int) -> JSON:
        return self.evaluate("GetSupplyChanges", request={"currency": currency, "page_size": page_size})

    def fold_supply(self, currency: str, change_ids: list[str]) -> JSON:
        return self.submit("FoldSupply", request={"currency": currency, "change_ids": change_ids})

    # -- payment versus payment ------------------------------------------------------------------

    def propose_pvp(self, request: JSON) -> JSON:
        return self._debit("ProposePvp", str(request["payer_account"]), request)

    def accept_pvp(self, pvp_id: str, payer_account: str) -> JSON:
        request: JSON = {"pvp_id": pvp_id, "payer_account": payer_account}
        try:
            legs = self.get_pvp(pvp_id)["legs"]
        except ContractRejected:
            legs = {}
        if legs and legs["a"]["bank"] == self._msp_id and legs["p"]["bank"] != self._msp_id:
            proposer = str(legs["p"]["bank"])
            request.update(self._patient_details("GetPvpDetails", pvp_id, proposer, f"PvP {pvp_id}"))
        return self._debit("AcceptPvp", payer_account, request)

    def refuse_pvp(self, pvp_id: str, reason: str) -> JSON:
        return self.submit("RefusePvp", request={"pvp_id": pvp_id, "reason": reason})

    def deliver_pvp_leg(self, pvp_id: str) -> JSON:
        return self.submit("DeliverPvpLeg", request={"pvp_id": pvp_id}, follow_up=True)

    def refund_pvp_leg(self, pvp_id: str) -> JSON:
        return self.submit("RefundPvpLeg", request={"pvp_id": pvp_id})

    def get_pvp(self, pvp_id: str, details: bool = False) -> JSON:
        record = self.evaluate("GetPvp", pvp_id, request={"details": True} if details else None)
        legs: JSON = record["legs"] if isinstance(record.get("legs"), dict) else {}
        acceptor, proposer = (legs.get("a") or {}).get("bank"), (legs.get("p") or {}).get("bank")
        if details and record.get("details") is None and acceptor == self._msp_id and proposer != self._msp_id:
            # Not accepted yet, so not in this bank's books: the proposer bank's peer has them
            # (the acceptor's gateway needs them to know which customer may answer the offer).
            record["details"] = self._checked_details("GetPvpDetails", pvp_id, str(proposer), record, f"PvP {pvp_id}")
        return record

    def _checked_details(self, query: str, object_id: str, holder: str, record: JSON, what: str) -> JSON | None:
        """The other bank's details for display, or ``None`` when its peer cannot give them now or they
        do not match the public record's salted hash (what acts on them, the contract, checks again)."""
        try:
            given = self._counterparty_details(query, object_id, holder, what)
        except (ContractRejected, LedgerFailure) as error:
            log.info("details of %s not available from %s: %s", what, holder, error)
            return None
        details, salt = given.get("details"), given.get("salt")
        if not isinstance(details, dict) or not isinstance(salt, str) or not _SALT.fullmatch(salt):
            return None
        # The contract's details_hash (payments.py) over its canonical JSON (ledger.encode); the
        # gateway does not import the chaincode, which is deployed on its own.
        canonical = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if hashlib.sha256(bytes.fromhex(salt) + canonical).hexdigest() != record.get("details_hash"):
            log.warning("details of %s from %s do not match the public hash", what, holder)
            return None
        return details

    def list_open_pvps(self, limit: int) -> JSON:
        return self.evaluate("ListOpenPvps", self._msp_id, str(limit))

    def search_payments(self, query: JSON) -> JSON:
        return self.evaluate("ListPayments", json.dumps(query, separators=(",", ":")))

    # -- corridor policy (the regulator's) ------------------------------------------------------

    def get_corridor_policy(self) -> JSON:
        return self.evaluate("GetCorridorPolicy")

    def get_corridor_policy_history(self) -> JSON:
        return self.evaluate("GetCorridorPolicyHistory")

    def set_corridor_policy(self, policy: JSON) -> JSON:
        return self.submit("SetCorridorPolicy", json.dumps(policy, separators=(",", ":")))

    # -- disclosure on request ------------------------------------------------------------------

    def request_disclosure(self, payment_id: str, legal_basis: str) -> JSON:
        return self.submit("RequestDisclosure", payment_id, legal_basis)

    def get_disclosure(self, request_id: str, details: bool = False) -> JSON:
        return self.evaluate("GetDisclosure", request_id, request={"details": True} if details else None)

    def list_disclosures(self, bank: str | None, status: str | None) -> JSON:
        query = {name: value for name, value in (("bank", bank), ("status", status)) if value}
        return self.evaluate("ListDisclosures", json.dumps(query, separators=(",", ":")))

    def approve_disclosure(self, request_id: str) -> JSON:
        return self.submit("ApproveDisclosure", request_id)

    def refuse_disclosure(self, request_id: str, reason: str) -> JSON:
        return self.submit("RefuseDisclosure", request_id, reason)

    # -- settlement ---------------------------------------------------------------------------

    def open_settlement_cycle(self, cycle_id: str) -> JSON:
        return self.submit("OpenSettlementCycle", cycle_id)

    def confirm_settlement(self, cycle_id: str, external_ref: str) -> JSON:
        return self.submit("ConfirmSettlement", cycle_id, external_ref)

    def get_settlement_cycle(self, cycle_id: str) -> JSON:
        return self.evaluate("GetSettlementCycle", cycle_id)

    def list_settlement_cycles(self) -> JSON:
        return self.evaluate("ListSettlementCycles")

    # -- operations --------------------------------------------------------------------------------

    def ping(self) -> None:
        self.evaluate("GetReferenceData", timeout=PING_TIMEOUT_SECONDS)

    def channel_view(self) -> ChannelView:
        height = self._guard(lambda: self.network.get_ledger().height(PING_TIMEOUT_SECONDS))
        peers = self._guard(lambda: self.network.get_channel_peers(PING_TIMEOUT_SECONDS))
        members: dict[str, int] = {}
        for peer in peers:
            members[peer.msp_id] = max(members.get(peer.msp_id, 0), peer.ledger_height or 0)
        return ChannelView(height=height, members=members)

    def events(self, start_block: int, after_transaction_id: str | None) -> Iterator[LedgerEvent]:
        stream = self._guard(
            lambda: self.network.get_chaincode_events(
                self.chaincode, start_block=start_block, after_transaction_id=after_transaction_id
            )
        )
        return ChaincodeEventFeed(stream, self._msp_id)

    def close(self) -> None:
        self.gateway.close()
