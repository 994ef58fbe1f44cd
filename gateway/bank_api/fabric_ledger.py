"""The ledger port on the real network: the deposit-token chaincode through our Fabric client.

Every write is endorsed by this bank's own peer only (``endorsing_organizations=[own MSP]``)
and returns after it committed; read conflicts are retried with a fresh transaction
(``submit_with_retry``). Private input travels in the transient map under ``request``.
Debits are first tried against the account's folded balance alone; only a refusal for
insufficient funds makes the gateway read the account's ``pending_credits`` and try again
with them, so received money is still spendable (docs/contract-api.md, "Balances, credits and
pending_credits") without a query before every debit (docs/decisions/0011).

Failures are translated once, here: a contract refusal keeps its code; an unreachable
peer or orderer, an unknown commit status and exhausted read conflicts become
``LedgerUnavailable`` (the caller may retry: every write is idempotent by its reference);
anything else is ``LedgerFailure``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from fabric_protos.peer import transaction_pb2

from gateway.bank_api.config import ConfigError, GatewayConfig
from gateway.bank_api.ledger import (
    JSON,
    ContractRejected,
    LedgerError,
    LedgerEvent,
    LedgerFailure,
    LedgerUnavailable,
    parse_contract_error,
)
from gateway.bank_api.metrics import GatewayMetrics
from gateway.fabric_client import (
    CommitError,
    CommitStatusError,
    Contract,
    Deadlines,
    Gateway,
    GatewayError,
    SubmitError,
    submit_with_retry,
)
from gateway.fabric_client.profile import connect_org

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_KEY = "request"
MAX_PENDING_CREDITS = 1000
SUBMIT_ATTEMPTS = 6
POLICY_RETRIES = 2
ENDORSEMENT_POLICY_FAILURE = int(transaction_pb2.ENDORSEMENT_POLICY_FAILURE)
PING_TIMEOUT_SECONDS = 3.0

_UNAVAILABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


def translate(error: GatewayError) -> LedgerError:
    """One Fabric client error → the port's error."""
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
            return LedgerUnavailable(f"read conflicts persisted ({error.code_name})", retry_after=1)
        return LedgerFailure(f"transaction invalid: {error.code_name}")
    if isinstance(error, CommitStatusError | SubmitError):
        return LedgerUnavailable(f"{error.operation} did not complete: {error.grpc_code}", retry_after=2)
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

    def __init__(self, stream: Any) -> None:
        self._stream = stream
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
            raise translate(error) from None

    def __iter__(self) -> ChaincodeEventFeed:
        return self

    def __next__(self) -> LedgerEvent:
        return next(self._events)

    def close(self) -> None:
        self._stream.close()


class FabricLedger:
    def __init__(
        self,
        gateway: Gateway,
        msp_id: str,
        channel: str = "tokens",
        chaincode: str = "deposit_token",
        commit_timeout: float | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.metrics = metrics or GatewayMetrics()
        self.gateway = gateway
        self._msp_id = msp_id
        self.network = gateway.get_network(channel)
        self.chaincode = chaincode
        self.contract: Contract = self.network.get_contract(chaincode)
        self.commit_timeout = commit_timeout

    @classmethod
    def from_config(cls, config: GatewayConfig, metrics: GatewayMetrics | None = None) -> FabricLedger:
        if not config.profile_path:
            raise ConfigError("the Fabric ledger needs profile_path (BANK_API_PROFILE or --profile)")
        deadlines = Deadlines(
            evaluate=config.evaluate_timeout_seconds,
            endorse=config.submit_timeout_seconds,
            submit=config.submit_timeout_seconds,
            commit_status=config.submit_timeout_seconds,
        )
        try:
            gateway = connect_org(config.profile_path, config.msp_id, deadlines=deadlines)
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"cannot connect as {config.msp_id} from {config.profile_path}: {error}") from error
        return cls(gateway, config.msp_id, config.channel, config.chaincode, config.submit_timeout_seconds, metrics)

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
            translated = translate(error)
            if not isinstance(translated, ContractRejected):
                log.warning("ledger call failed: %s", translated)
            raise translated from None

    def _transient(self, request: JSON | None) -> dict[str, bytes] | None:
        if request is None:
            return None
        return {TRANSIENT_KEY: json.dumps(request, separators=(",", ":")).encode()}

    def evaluate(self, name: str, *args: str, request: JSON | None = None, timeout: float | None = None) -> JSON:
        raw = self._guard(
            lambda: self.contract.evaluate_transaction(
                name,
                *args,
                transient=self._transient(request),
                endorsing_organizations=[self._msp_id],
                timeout=timeout,
            ),
            "evaluate",
            name,
        )
        return _decode(raw, name)

    def submit(self, name: str, *args: str, request: JSON | None = None) -> JSON:
        transient = self._transient(request)

        def run() -> bytes:
            for attempt in range(POLICY_RETRIES + 1):
                try:
                    return submit_with_retry(
                        self.contract,
                        name,
                        *args,
                        transient=transient,
                        endorsing_organizations=[self._msp_id],
                        attempts=SUBMIT_ATTEMPTS,
                        commit_timeout=self.commit_timeout,
                    )
                except CommitError as error:
                    # A concurrent transaction moved a key we wrote on to a stricter state-based
                    # policy (the same payment settled by another worker, say). Like a read
                    # conflict, a fresh run sees the new state and usually finds nothing to do.
                    if error.code != ENDORSEMENT_POLICY_FAILURE or attempt == POLICY_RETRIES:
                        raise
            raise AssertionError("unreachable: the loop returns or raises")

        raw = self._guard(run, "submit", name)
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

    def _debit(self, name: str, account_id: str, request: JSON) -> JSON:
        """Submit a debit on the folded balance; on ``insufficient_funds``, again with the pending credits.

        The refused try changed nothing (it failed at endorsement), so the second is not a repeat.
        """
        try:
            return self.submit(name, request={**request, "pending_credits": []})
        except ContractRejected as refused:
            if refused.code != "insufficient_funds":
                raise
            pending = self._spendable(account_id)["pending_credits"]
            if not pending:
                raise
        return self.submit(name, request={**request, "pending_credits": pending})

    # -- payments --------------------------------------------------------------------------

    def initiate_payment(self, request: JSON) -> JSON:
        return self._debit("InitiatePayment", str(request["payer_account"]), request)

    def complete_payment(self, payment_id: str) -> JSON:
        return self.submit("CompletePayment", request={"payment_id": payment_id})

    def reject_payment(self, payment_id: str, reason: str) -> JSON:
        return self.submit("RejectPayment", request={"payment_id": payment_id, "reason": reason})

    def refund_payment(self, payment_id: str) -> JSON:
        return self.submit("RefundPayment", request={"payment_id": payment_id})

    def get_payment(self, payment_id: str, details: bool = False) -> JSON:
        return self.evaluate("GetPayment", payment_id, request={"details": True} if details else None)

    def list_payments(self, bank: str | None, status: str | None, page_size: int, bookmark: str) -> JSON:
        query: JSON = {"page_size": page_size}
        if bank:
            query["bank"] = bank
        if status:
            query["status"] = status
        if bookmark:
            query["bookmark"] = bookmark
        return self.evaluate("ListPayments", json.dumps(query, separators=(",", ":")))

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

    def events(self, start_block: int, after_transaction_id: str | None) -> Iterator[LedgerEvent]:
        stream = self._guard(
            lambda: self.network.get_chaincode_events(
                self.chaincode, start_block=start_block, after_transaction_id=after_transaction_id
            )
        )
        return ChaincodeEventFeed(stream)

    def close(self) -> None:
        self.gateway.close()
