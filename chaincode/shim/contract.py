"""The contract layer: transaction functions registered by name, with typed arguments.

A contract is a class with methods marked ``@transaction`` (may write) or ``@query``
(read-only: the stub refuses writes, and the metadata says so). A method ``open_account``
is exposed as ``OpenAccount``; with several contracts in one chaincode, a function is
called as ``<contract name>:<Function>`` and the first (default) contract also answers the
bare name, as in the Node and Java contract APIs. ``org.hyperledger.fabric:GetMetadata``
describes every function.

Arguments arrive as strings and are converted to the parameter's annotation: ``str``,
``int`` (plain decimal, no float, no ``_``), ``bool`` (``true``/``false``) or ``bytes``
(passed as is). A wrong count or an unconvertible value is a 400 that names the function
and the parameter. Return values: dict, list or dataclass → compact JSON; str → UTF-8;
bytes as is; int and bool → JSON; None → empty.

``raise ContractError(message, status)`` answers with that status and message. A
:class:`~chaincode.shim.api.LedgerError` (the peer refused a request) answers 500 with the
peer's explanation. Any other exception answers a generic 500 and is logged by type and
line only: exception messages and arguments may hold customer data.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import re
import traceback
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

from chaincode.shim.api import ClientIdentity, LedgerError, Stub
from chaincode.shim.stub import ChaincodeResponse

log = logging.getLogger("chaincode.contract")

SYSTEM_CONTRACT = "org.hyperledger.fabric"
METADATA_SCHEMA = "https://hyperledger.github.io/fabric-chaincode-node/main/api/contract-schema.json"
_MARK = "__chaincode_transaction__"
_INT = re.compile(r"-?[0-9]+")

F = TypeVar("F", bound=Callable[..., Any])


class ContractError(Exception):
    """A refusal the caller should see: the status (4xx or 5xx) and message go back as is."""

    def __init__(self, message: str, status: int = 400) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"a contract error status must be 4xx or 5xx, not {status}")
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class _Mark:
    submit: bool
    name: str | None


def _marker(submit: bool, func: F | None, name: str | None) -> Any:
    def mark(target: F) -> F:
        setattr(target, _MARK, _Mark(submit=submit, name=name))
        return target

    return mark(func) if func is not None else mark


@overload
def transaction(func: F, *, name: str | None = None) -> F: ...
@overload
def transaction(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
def transaction(func: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Expose a method as a transaction that may write (``@transaction`` or ``@transaction(name=...)``)."""
    return typing.cast("F | Callable[[F], F]", _marker(True, func, name))


@overload
def query(func: F, *, name: str | None = None) -> F: ...
@overload
def query(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
def query(func: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Expose a method as a read-only function: the stub refuses its writes."""
    return typing.cast("F | Callable[[F], F]", _marker(False, func, name))


class Context:
    """What a transaction function receives first: the stub and the caller's identity."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self._client_identity: ClientIdentity | None = None

    @property
    def client_identity(self) -> ClientIdentity:
        if self._client_identity is None:
            self._client_identity = self.stub.get_client_identity()
        return self._client_identity

    @property
    def tx_id(self) -> str:
        return self.stub.get_tx_id()


class Contract:
    """Base class of a contract. Subclasses set ``name`` and mark methods."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    title: ClassVar[str] = ""
    context_class: ClassVar[type[Context]] = Context

    def create_context(self, stub: Stub) -> Context:
        return self.context_class(stub)

    def before_transaction(self, ctx: Context) -> None:
        """Called before every function of this contract; raise ContractError to refuse."""

    @classmethod
    def contract_name(cls) -> str:
        return cls.name or cls.__name__


def pascal_case(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


_SCHEMAS: dict[Any, dict[str, str]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    bytes: {"type": "string", "format": "byte"},
}


@dataclass(frozen=True)
class _Parameter:
    name: str
    kind: Any
    required: bool
    default: Any = None

    def convert(self, raw: bytes, function: str) -> Any:
        if self.kind is bytes:
            return raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError(f"{function}: argument '{self.name}' is not valid UTF-8") from None
        if self.kind is str:
            return text
        if self.kind is int:
            if not _INT.fullmatch(text):
                raise ContractError(f"{function}: argument '{self.name}' must be an integer")
            return int(text)
        if self.kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false"):
                raise ContractError(f"{function}: argument '{self.name}' must be true or false")
            return lowered == "true"
        raise AssertionError(f"unsupported parameter type {self.kind!r}")


@dataclass(frozen=True)
class _Function:
    contract: Contract
    name: str
    method: Callable[..., Any]
    parameters: tuple[_Parameter, ...]
    submit: bool
    returns: dict[str, str] | None
    description: str

    def bind(self, raw_args: Sequence[bytes], qualified: str) -> list[Any]:
        required = sum(1 for p in self.parameters if p.required)
        if not required <= len(raw_args) <= len(self.parameters):
            names = ", ".join(p.name for p in self.parameters) or "none"
            expected = str(required) if required == len(self.parameters) else f"{required} to {len(self.parameters)}"
            raise ContractError(f"{qualified} takes {expected} argument(s) ({names}), got {len(raw_args)}")
        return [p.convert(raw, qualified) for p, raw in zip(self.parameters, raw_args, strict=False)]

    def metadata(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            # Node's tag is "submitTx"; Java's are SUBMIT / EVALUATE.
            "tag": ["submitTx", "SUBMIT"] if self.submit else ["EVALUATE"],
            "parameters": [
                {"name": p.name, "description": "", "schema": dict(_SCHEMAS[p.kind])} for p in self.parameters
            ],
        }
        if self.returns is not None:
            entry["returns"] = self.returns
        if self.description:
            entry["description"] = self.description
        return entry


def _return_schema(annotation: Any) -> dict[str, str] | None:
    if annotation in (None, type(None), inspect.Signature.empty):
        return None
    origin = typing.get_origin(annotation) or annotation
    if origin in (dict, typing.get_origin(dict[str, Any])) or dataclasses.is_dataclass(origin):
        return {"type": "object"}
    if origin in (list, tuple):
        return {"type": "array"}
    if annotation in _SCHEMAS:
        return dict(_SCHEMAS[annotation])
    return {"type": "string"}


def _describe(contract: Contract, attribute: str, func: Callable[..., Any], mark: _Mark) -> _Function:
    qualified = f"{type(contract).__name__}.{attribute}"
    hints = typing.get_type_hints(func)
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    if len(params) < 2 or params[0].name != "self":
        raise TypeError(f"{qualified} must take (self, ctx, ...)")
    parameters = []
    for param in params[2:]:
        if param.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            raise TypeError(f"{qualified}: parameter '{param.name}' must be positional")
        kind = hints.get(param.name, str)
        if kind not in _SCHEMAS:
            raise TypeError(
                f"{qualified}: parameter '{param.name}' has unsupported type {kind!r} (use str, int, bool or bytes)"
            )
        required = param.default is inspect.Parameter.empty
        parameters.append(_Parameter(param.name, kind, required, None if required else param.default))
    return _Function(
        contract=contract,
        name=mark.name or pascal_case(attribute),
        method=getattr(contract, attribute),
        parameters=tuple(parameters),
        submit=mark.submit,
        returns=_return_schema(hints.get("return", inspect.Signature.empty)),
        description=inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].replace("\n", " "),
    )


def encode_result(result: Any) -> bytes:
    """The response payload for a function's return value."""
    if result is None:
        return b""
    if isinstance(result, bytes | bytearray):
        return bytes(result)
    if isinstance(result, str):
        return result.encode("utf-8")
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    if isinstance(result, dict | list | tuple | int | bool):
        # Every endorsing peer must return identical bytes: json.dumps is deterministic for
        # the same value, and the compact form keeps blocks small.
        return json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raise TypeError(f"cannot encode a {type(result).__name__} as a response payload")


class ContractRouter:
    """Finds the function a transaction names, converts its arguments and runs it."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        if not contracts:
            raise ValueError("a chaincode needs at least one contract")
        self._contracts: dict[str, dict[str, _Function]] = {}
        self._default = contracts[0].contract_name()
        self._contract_objects: dict[str, Contract] = {}
        for contract in contracts:
            name = contract.contract_name()
            if ":" in name or name == SYSTEM_CONTRACT:
                raise ValueError(f"contract name {name!r} is not allowed")
            if name in self._contracts:
                raise ValueError(f"two contracts are named {name!r}")
            functions: dict[str, _Function] = {}
            for attribute in sorted(dir(type(contract))):
                func = getattr(type(contract), attribute, None)
                mark = getattr(func, _MARK, None)
                if not isinstance(mark, _Mark) or func is None:
                    continue
                described = _describe(contract, attribute, func, mark)
                if described.name in functions:
                    raise ValueError(f"contract {name!r} exposes {described.name!r} twice")
                functions[described.name] = described
            self._contracts[name] = functions
            self._contract_objects[name] = contract
        self._metadata = self._build_metadata()

    @property
    def contract_names(self) -> list[str]:
        return list(self._contracts)

    def function_names(self, contract: str | None = None) -> list[str]:
        return sorted(self._contracts[contract or self._default])

    def metadata(self) -> dict[str, Any]:
        return json.loads(self._metadata)

    def dispatch(self, stub: Stub) -> ChaincodeResponse:
        args = stub.get_args()
        if not args or not args[0]:
            return ChaincodeResponse(400, "no transaction function named: the first argument is empty")
        try:
            requested = args[0].decode("utf-8")
        except UnicodeDecodeError:
            return ChaincodeResponse(400, "the function name is not valid UTF-8")
        contract_name, _, function_name = requested.rpartition(":")
        if contract_name == SYSTEM_CONTRACT:
            if function_name == "GetMetadata":
                return ChaincodeResponse(200, "", self._metadata)
            return ChaincodeResponse(400, f"unknown transaction function {_quote(requested)}")
        functions = self._contracts.get(contract_name or self._default)
        if functions is None:
            return ChaincodeResponse(400, f"unknown contract {_quote(contract_name)} in {_quote(requested)}")
        function = functions.get(function_name)
        if function is None:
            contract = _quote(contract_name or self._default)
            message = f"unknown transaction function {_quote(requested)} in contract {contract}"
            return ChaincodeResponse(400, message)
        return self._run(function, stub, args[1:])

    def _run(self, function: _Function, stub: Stub, raw_args: Sequence[bytes]) -> ChaincodeResponse:
        try:
            values = function.bind(raw_args, function.name)
            if not function.submit:
                restrict = getattr(stub, "restrict_to_reads", None)
                if restrict is not None:
                    restrict(function.name)
            ctx = function.contract.create_context(stub)
            function.contract.before_transaction(ctx)
            result = function.method(ctx, *values)
            return ChaincodeResponse(200, "", encode_result(result))
        except ContractError as exc:
            return ChaincodeResponse(exc.status, exc.message)
        except LedgerError as exc:
            return ChaincodeResponse(500, f"{function.name}: ledger request failed: {exc}")
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            log.error(
                "transaction function raised",
                extra={
                    "txid": stub.get_tx_id()[:8],
                    "fn": function.name,
                    "error": type(exc).__name__,
                    "where": f"{frame.filename}:{frame.lineno}" if frame else "",
                },
            )
            return ChaincodeResponse(
                500, f"internal error in {function.name} (txid {stub.get_tx_id()[:8]}); see the chaincode log"
            )

    def _build_metadata(self) -> bytes:
        contracts: dict[str, Any] = {}
        for name, functions in self._contracts.items():
            contract = self._contract_objects[name]
            contracts[name] = {
                "name": name,
                "info": {"title": contract.title or name, "version": contract.version},
                "contractInstance": {"name": name, "default": name == self._default},
                "transactions": [functions[fn].metadata() for fn in sorted(functions)],
            }
        default = self._contract_objects[self._default]
        document = {
            "$schema": METADATA_SCHEMA,
            "info": {"title": default.title or self._default, "version": default.version},
            "contracts": contracts,
            "components": {"schemas": {}},
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _quote(text: str) -> str:
    return repr(text[:100])
