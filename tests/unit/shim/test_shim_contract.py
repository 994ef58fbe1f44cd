"""The contract layer on its own: names, registration checks, metadata, result encoding."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chaincode.conformance.contract import ConformanceContract
from chaincode.shim.contract import (
    Context,
    Contract,
    ContractError,
    ContractRouter,
    encode_result,
    pascal_case,
    query,
    transaction,
)
from chaincode.shim.stub import ChaincodeStub, PeerCapabilities, ProposalContext


def _stub(*args: str) -> ChaincodeStub:
    def no_peer(msg_type: int, payload: bytes) -> bytes:
        raise AssertionError("no ledger call expected")

    return ChaincodeStub(
        requester=no_peer,
        channel_id="tokens",
        tx_id="0" * 64,
        args=[a.encode() for a in args],
        proposal=ProposalContext(transient={}),
        capabilities=PeerCapabilities(),
    )


class Payments(Contract):
    name = "payments"
    version = "2.1.0"

    @transaction
    def initiate_payment(self, ctx: Context, amount: int, urgent: bool, reference: bytes) -> dict[str, object]:
        """Start a payment.

        More detail that the metadata leaves out.
        """
        return {"amount": amount, "urgent": urgent, "reference": reference.hex()}

    @query
    def payment_count(self, ctx: Context) -> int:
        return 7

    @transaction(name="Settle")
    def settle_cycle(self, ctx: Context) -> None:
        return None


class Reports(Contract):
    name = "reports"

    @query
    def payment_count(self, ctx: Context) -> str:
        return "reports"


def test_pascal_case() -> None:
    assert pascal_case("open_account") == "OpenAccount"
    assert pascal_case("get_state_multiple") == "GetStateMultiple"
    assert pascal_case("x") == "X"


def test_default_contract_answers_bare_names_and_others_need_a_prefix() -> None:
    router = ContractRouter([Payments(), Reports()])
    assert router.dispatch(_stub("PaymentCount")).payload == b"7"
    assert router.dispatch(_stub("payments:PaymentCount")).payload == b"7"
    assert router.dispatch(_stub("reports:PaymentCount")).payload == b"reports"
    assert router.dispatch(_stub("Settle")).status == 200
    assert router.dispatch(_stub("SettleCycle")).status == 400


def test_typed_arguments_are_converted() -> None:
    router = ContractRouter([Payments()])
    response = router.dispatch(_stub("InitiatePayment", "1250", "true", "ab"))
    assert json.loads(response.payload) == {"amount": 1250, "urgent": True, "reference": "6162"}


def test_metadata_describes_every_function() -> None:
    router = ContractRouter([Payments(), Reports()])
    response = router.dispatch(_stub("org.hyperledger.fabric:GetMetadata"))
    assert response.status == 200
    metadata = json.loads(response.payload)
    assert metadata["$schema"].endswith("contract-schema.json")
    assert metadata["info"] == {"title": "payments", "version": "2.1.0"}
    payments = metadata["contracts"]["payments"]
    assert payments["contractInstance"] == {"name": "payments", "default": True}
    assert metadata["contracts"]["reports"]["contractInstance"]["default"] is False
    by_name = {tx["name"]: tx for tx in payments["transactions"]}
    assert sorted(by_name) == ["InitiatePayment", "PaymentCount", "Settle"]
    initiate = by_name["InitiatePayment"]
    assert initiate["tag"] == ["submitTx", "SUBMIT"]
    assert initiate["description"] == "Start a payment."
    assert initiate["returns"] == {"type": "object"}
    assert [(p["name"], p["schema"]) for p in initiate["parameters"]] == [
        ("amount", {"type": "integer"}),
        ("urgent", {"type": "boolean"}),
        ("reference", {"type": "string", "format": "byte"}),
    ]
    assert by_name["PaymentCount"]["tag"] == ["EVALUATE"]
    assert "returns" not in by_name["Settle"]
    # Every endorser must return identical bytes.
    assert ContractRouter([Payments(), Reports()]).dispatch(_stub("org.hyperledger.fabric:GetMetadata")).payload == (
        response.payload
    )


def test_conformance_metadata_marks_queries() -> None:
    metadata = ContractRouter([ConformanceContract()]).metadata()
    tags = {tx["name"]: tx["tag"] for tx in metadata["contracts"]["conformance"]["transactions"]}
    assert tags["GetState"] == ["EVALUATE"]
    assert tags["PutState"] == ["submitTx", "SUBMIT"]
    assert tags["TransientEcho"] == ["EVALUATE"]


def test_registration_refuses_unsupported_parameter_types() -> None:
    class Floaty(Contract):
        @transaction
        def pay(self, ctx: Context, amount: float) -> None: ...

    with pytest.raises(TypeError, match="unsupported type"):
        ContractRouter([Floaty()])


def test_registration_refuses_keyword_only_parameters() -> None:
    class KeywordOnly(Contract):
        @transaction
        def pay(self, ctx: Context, *, amount: int) -> None: ...

    with pytest.raises(TypeError, match="must be positional"):
        ContractRouter([KeywordOnly()])


def test_registration_refuses_duplicate_and_reserved_names() -> None:
    class Twice(Contract):
        @transaction
        def pay(self, ctx: Context) -> None: ...

        @transaction(name="Pay")
        def pay_again(self, ctx: Context) -> None: ...

    with pytest.raises(ValueError, match="twice"):
        ContractRouter([Twice()])
    with pytest.raises(ValueError, match="two contracts"):
        ContractRouter([Payments(), Payments()])

    class Colon(Contract):
        name = "a:b"

    with pytest.raises(ValueError, match="not allowed"):
        ContractRouter([Colon()])
    with pytest.raises(ValueError, match="at least one"):
        ContractRouter([])


def test_contract_error_status_must_be_an_error() -> None:
    with pytest.raises(ValueError):
        ContractError("fine", 200)
    assert ContractError("gone", 404).status == 404


def test_before_transaction_can_refuse() -> None:
    class Guarded(Contract):
        def before_transaction(self, ctx: Context) -> None:
            raise ContractError("only banks may call this contract", 403)

        @query
        def anything(self, ctx: Context) -> str:
            return "should not run"

    response = ContractRouter([Guarded()]).dispatch(_stub("Anything"))
    assert (response.status, response.message) == (403, "only banks may call this contract")


@dataclasses.dataclass
class Position:
    bank: str
    net: int


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, b""),
        (b"\x00raw", b"\x00raw"),
        ("héllo", "héllo".encode()),
        ({"b": 1, "a": [True, None]}, b'{"b":1,"a":[true,null]}'),
        ([1, 2], b"[1,2]"),
        (42, b"42"),
        (False, b"false"),
        (Position("USBankMSP", -5), b'{"bank":"USBankMSP","net":-5}'),
    ],
)
def test_result_encoding(value: object, encoded: bytes) -> None:
    assert encode_result(value) == encoded


def test_unencodable_result_is_a_500() -> None:
    class Odd(Contract):
        @query
        def odd(self, ctx: Context) -> object:
            return object()

    response = ContractRouter([Odd()]).dispatch(_stub("Odd"))
    assert response.status == 500
