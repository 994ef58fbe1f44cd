"""The declarative topology file (network/network.yaml), loaded and validated.

Every error names the offending field with a path such as ``banks[1].currencies[0]``,
so a malformed file is fixed in one look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TOPOLOGY = Path(__file__).with_name("network.yaml")

_MSP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*MSP$")
_ORG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,30}$")
_NODE_NAME = re.compile(r"^[a-z][a-z0-9]{0,30}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_JURISDICTION = re.compile(r"^[A-Z]{2,4}$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9.-]{0,48}$")
_DOMAIN = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")
_CHAINCODE = re.compile(r"^[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*$")
_VERSION = re.compile(r"^[A-Za-z0-9_.+-]+$")
_DURATION = re.compile(r"^\d+(ms|s)$")
_BYTES = re.compile(r"^\d+ ?(KB|MB)$")
_CONTRACT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

MAX_BANKS = 20


class TopologyError(ValueError):
    """The topology file is malformed; the message names the field."""


@dataclass(frozen=True)
class Org:
    name: str
    msp_id: str
    jurisdiction: str
    currencies: tuple[str, ...]
    kind: str  # "bank" or "regulator"
    domain: str

    @property
    def peer_host(self) -> str:
        return f"peer0.{self.domain}"


@dataclass(frozen=True)
class OrdererOrg:
    name: str
    msp_id: str
    nodes: tuple[str, ...]
    domain: str
    batch_timeout: str
    max_message_count: int
    preferred_max_bytes: str

    def host(self, node: str) -> str:
        return f"{node}.{self.domain}"


@dataclass(frozen=True)
class ChaincodeSpec:
    name: str
    version: str
    contract: str
    collections: str | None
    test_only: bool
    init_function: str | None


@dataclass(frozen=True)
class Topology:
    channel: str
    domain: str
    base_port: int
    orderer: OrdererOrg
    currencies: dict[str, int]
    banks: tuple[Org, ...]
    regulator: Org
    chaincodes: tuple[ChaincodeSpec, ...]
    source: Path = field(default=DEFAULT_TOPOLOGY)

    @property
    def peer_orgs(self) -> tuple[Org, ...]:
        """Banks first, then the regulator: the order ports are assigned in."""
        return (*self.banks, self.regulator)

    def org(self, msp_id: str) -> Org:
        for org in self.peer_orgs:
            if org.msp_id == msp_id:
                return org
        raise KeyError(msp_id)

    def chaincodes_for(self, with_test_chaincodes: bool) -> tuple[ChaincodeSpec, ...]:
        return tuple(cc for cc in self.chaincodes if with_test_chaincodes or not cc.test_only)

    def reference_data(self) -> dict[str, Any]:
        """The public reference data the deposit-token contract is initialised with."""
        return {
            "regulator": self.regulator.msp_id,
            "currencies": dict(self.currencies),
            "banks": [
                {
                    "msp_id": bank.msp_id,
                    "name": bank.name,
                    "jurisdiction": bank.jurisdiction,
                    "currencies": list(bank.currencies),
                }
                for bank in self.banks
            ],
        }


def load_topology(path: Path | str = DEFAULT_TOPOLOGY) -> Topology:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise TopologyError(f"topology file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise TopologyError(f"topology file {path} is not valid YAML: {exc}") from exc
    return parse_topology(raw, source=path)


def parse_topology(raw: Any, source: Path = DEFAULT_TOPOLOGY) -> Topology:
    root = _mapping(raw, "<root>")
    _no_unknown(root, "<root>", {"network", "orderer", "currencies", "banks", "regulator", "chaincodes"})

    net = _mapping(_required(root, "network", "<root>"), "network")
    _no_unknown(net, "network", {"channel", "domain", "base_port"})
    channel = _string(net, "channel", "network", _CHANNEL, "lowercase letters, digits, '.' or '-'")
    domain = _string(net, "domain", "network", _DOMAIN, "a lowercase DNS domain")
    base_port = _integer(net, "base_port", "network", 1024, 60000)

    currencies_raw = _mapping(_required(root, "currencies", "<root>"), "currencies")
    currencies: dict[str, int] = {}
    for code, exponent in currencies_raw.items():
        where = f"currencies.{code}"
        if not isinstance(code, str) or not _CURRENCY.match(code):
            raise TopologyError(f"{where}: currency code must be three capital letters (ISO 4217)")
        if isinstance(exponent, bool) or not isinstance(exponent, int) or not 0 <= exponent <= 4:
            raise TopologyError(f"{where}: exponent must be an integer from 0 to 4, got {exponent!r}")
        currencies[code] = exponent
    if not currencies:
        raise TopologyError("currencies: at least one currency is required")

    orderer_raw = _mapping(_required(root, "orderer", "<root>"), "orderer")
    _no_unknown(
        orderer_raw,
        "orderer",
        {"name", "msp_id", "nodes", "batch_timeout", "max_message_count", "preferred_max_bytes"},
    )
    nodes_raw = _list(_required(orderer_raw, "nodes", "orderer"), "orderer.nodes")
    nodes: list[str] = []
    for i, node in enumerate(nodes_raw):
        if not isinstance(node, str) or not _NODE_NAME.match(node):
            raise TopologyError(f"orderer.nodes[{i}]: node name must be lowercase letters and digits")
        if node in nodes:
            raise TopologyError(f"orderer.nodes[{i}]: duplicate node name {node!r}")
        nodes.append(node)
    if len(nodes) not in (1, 3, 5):
        raise TopologyError(f"orderer.nodes: Raft needs 1, 3 or 5 orderers, got {len(nodes)}")
    orderer_name = _string(orderer_raw, "name", "orderer", _ORG_NAME, "letters and digits")
    orderer = OrdererOrg(
        name=orderer_name,
        msp_id=_string(orderer_raw, "msp_id", "orderer", _MSP_ID, "letters and digits ending in 'MSP'"),
        nodes=tuple(nodes),
        domain=f"{orderer_name.lower()}.{domain}",
        batch_timeout=_string(orderer_raw, "batch_timeout", "orderer", _DURATION, "a duration like 250ms"),
        max_message_count=_integer(orderer_raw, "max_message_count", "orderer", 1, 10000),
        preferred_max_bytes=_string(orderer_raw, "preferred_max_bytes", "orderer", _BYTES, "like '2 MB'"),
    )

    banks_raw = _list(_required(root, "banks", "<root>"), "banks")
    if not banks_raw:
        raise TopologyError("banks: at least one bank is required")
    if len(banks_raw) > MAX_BANKS:
        raise TopologyError(f"banks: at most {MAX_BANKS} banks fit the port plan, got {len(banks_raw)}")
    banks = tuple(_org(b, f"banks[{i}]", "bank", domain, currencies) for i, b in enumerate(banks_raw))
    regulator = _org(_required(root, "regulator", "<root>"), "regulator", "regulator", domain, currencies)

    seen_names: dict[str, str] = {orderer.name.lower(): "orderer.name"}
    seen_msps: dict[str, str] = {orderer.msp_id: "orderer.msp_id"}
    for i, org in enumerate((*banks, regulator)):
        where = f"banks[{i}]" if org.kind == "bank" else "regulator"
        if org.name.lower() in seen_names:
            raise TopologyError(f"{where}.name: {org.name!r} is already used by {seen_names[org.name.lower()]}")
        if org.msp_id in seen_msps:
            raise TopologyError(f"{where}.msp_id: {org.msp_id!r} is already used by {seen_msps[org.msp_id]}")
        seen_names[org.name.lower()] = f"{where}.name"
        seen_msps[org.msp_id] = f"{where}.msp_id"

    chaincodes_raw = _list(root.get("chaincodes", []), "chaincodes")
    chaincodes: list[ChaincodeSpec] = []
    for i, cc_raw in enumerate(chaincodes_raw):
        where = f"chaincodes[{i}]"
        cc = _mapping(cc_raw, where)
        _no_unknown(cc, where, {"name", "version", "contract", "collections", "test_only", "init"})
        collections = cc.get("collections")
        if collections not in (None, "deposit_token"):
            raise TopologyError(f"{where}.collections: must be 'deposit_token' or absent, got {collections!r}")
        test_only = cc.get("test_only", False)
        if not isinstance(test_only, bool):
            raise TopologyError(f"{where}.test_only: must be true or false")
        init_function: str | None = None
        if "init" in cc:
            init = _mapping(cc["init"], f"{where}.init")
            _no_unknown(init, f"{where}.init", {"function", "reference_data"})
            init_function = _string(init, "function", f"{where}.init", re.compile(r"^[A-Za-z]\w*$"), "a name")
        spec = ChaincodeSpec(
            name=_string(cc, "name", where, _CHAINCODE, "letters and digits separated by '-' or '_'"),
            version=_string(cc, "version", where, _VERSION, "letters, digits, '_', '.', '+', '-'"),
            contract=_string(cc, "contract", where, _CONTRACT_REF, "'package.module:ClassName'"),
            collections=collections,
            test_only=test_only,
            init_function=init_function,
        )
        if any(c.name == spec.name for c in chaincodes):
            raise TopologyError(f"{where}.name: duplicate chaincode name {spec.name!r}")
        chaincodes.append(spec)

    return Topology(
        channel=channel,
        domain=domain,
        base_port=base_port,
        orderer=orderer,
        currencies=currencies,
        banks=banks,
        regulator=regulator,
        chaincodes=tuple(chaincodes),
        source=source,
    )


def _org(raw: Any, where: str, kind: str, domain: str, currencies: dict[str, int]) -> Org:
    org = _mapping(raw, where)
    allowed = {"name", "msp_id", "jurisdiction", "currencies"}
    _no_unknown(org, where, allowed if kind == "bank" else allowed - {"currencies"})
    name = _string(org, "name", where, _ORG_NAME, "letters and digits, starting with a letter")
    issued: list[str] = []
    if kind == "bank":
        for j, code in enumerate(_list(_required(org, "currencies", where), f"{where}.currencies")):
            if code not in currencies:
                raise TopologyError(
                    f"{where}.currencies[{j}]: {code!r} is not listed under 'currencies' "
                    f"(known: {', '.join(sorted(currencies))})"
                )
            if code in issued:
                raise TopologyError(f"{where}.currencies[{j}]: {code!r} is listed twice")
            issued.append(code)
        if not issued:
            raise TopologyError(f"{where}.currencies: a bank must issue at least one currency")
    return Org(
        name=name,
        msp_id=_string(org, "msp_id", where, _MSP_ID, "letters and digits ending in 'MSP'"),
        jurisdiction=_string(org, "jurisdiction", where, _JURISDICTION, "2 to 4 capital letters"),
        currencies=tuple(issued),
        kind=kind,
        domain=f"{name.lower()}.{domain}",
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TopologyError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _required(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        prefix = "" if where == "<root>" else f"{where}."
        raise TopologyError(f"{prefix}{key}: required field is missing")
    return mapping[key]


def _no_unknown(mapping: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in mapping:
        if key not in allowed:
            prefix = "" if where == "<root>" else f"{where}."
            raise TopologyError(f"{prefix}{key}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _string(mapping: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], expected: str) -> str:
    value = _required(mapping, key, where)
    if not isinstance(value, str) or not pattern.match(value):
        raise TopologyError(f"{where}.{key}: expected {expected}, got {value!r}")
    return value


def _integer(mapping: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = _required(mapping, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TopologyError(f"{where}.{key}: expected an integer from {low} to {high}, got {value!r}")
    return value
