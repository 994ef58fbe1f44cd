"""The declarative topology file (network/network.yaml), loaded and validated.

Every organisation is a bank or the regulator; each names its own host (an IP address it
binds to and advertises) and how many ordering nodes it runs, so no single operator orders
the channel. Every error names the offending field with a path such as
``banks[1].currencies[0]``, so a malformed file is fixed in one look.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TOPOLOGY = Path(__file__).with_name("network.yaml")

_MSP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*MSP$")
_ORG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,30}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_JURISDICTION = re.compile(r"^[A-Z]{2,4}$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9.-]{0,48}$")
_DOMAIN = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")
_CHAINCODE = re.compile(r"^[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*$")
_VERSION = re.compile(r"^[A-Za-z0-9_.+-]+$")
_DURATION = re.compile(r"^\d+(ms|s)$")
_BYTES = re.compile(r"^\d+ ?(KB|MB)$")
_CONTRACT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NETNS = re.compile(r"^[a-z][a-z0-9-]{0,14}$")

MAX_BANKS = 20
MAX_ORDERERS_PER_ORG = 3
MAX_ORDERERS = 10  # the port plan gives orderers base + 0 .. base + 99
MAX_CHAINCODES = 5  # each has two server slots in the org's port block (network/ports.py)
CONSENSUS_TYPES = ("etcdraft", "BFT")
CRYPTO_SOURCES = ("ca", "cryptogen")


class TopologyError(ValueError):
    """The topology file is malformed; the message names the field."""


@dataclass(frozen=True)
class Org:
    name: str
    msp_id: str
    jurisdiction: str
    currencies: tuple[str, ...]
    kind: str  # "bank" or "regulator"
    domain: str  # the org's DNS domain, e.g. usbank.example.com
    host: str = "127.0.0.1"  # the address every node of the org binds to and advertises
    orderer_count: int = 0
    netns: str | None = None  # a Linux network namespace standing in for the org's own machine
    port_block: int | None = None  # the org's own port block (base + 100 + 20i when absent)

    @property
    def peer_host(self) -> str:
        return f"peer0.{self.domain}"

    @property
    def ca_host(self) -> str:
        return f"ca.{self.domain}"

    @property
    def chaincode_host(self) -> str:
        return f"chaincode.{self.domain}"


@dataclass(frozen=True)
class OrdererNode:
    """One ordering node, run by ``org``; ``index`` counts the channel's orderers (ports, consenter ids)."""

    org: Org
    local_index: int
    index: int

    @property
    def name(self) -> str:
        return f"orderer{self.local_index}.{self.org.msp_id}"

    @property
    def dns_name(self) -> str:
        return f"orderer{self.local_index}.{self.org.domain}"

    @property
    def folder(self) -> str:
        return f"orderer{self.local_index}"

    @property
    def consenter_id(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class Ordering:
    consensus: str  # "etcdraft" or "BFT"
    batch_timeout: str
    max_message_count: int
    preferred_max_bytes: str


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
    orderer: Ordering
    currencies: dict[str, int]
    banks: tuple[Org, ...]
    regulator: Org
    chaincodes: tuple[ChaincodeSpec, ...]
    crypto: str = "ca"  # "ca": every org's own Fabric CAs; "cryptogen": the fast, single-folder option
    source: Path = field(default=DEFAULT_TOPOLOGY)
    founding_banks: int | None = None  # how many of ``banks`` were in the genesis block (None: all)

    @property
    def founders(self) -> tuple[Org, ...]:
        """The orgs of the channel's genesis block: the founding banks and the regulator."""
        return (*self.banks[: self.founding_count], self.regulator)

    @property
    def founding_count(self) -> int:
        return len(self.banks) if self.founding_banks is None else self.founding_banks

    @property
    def joined_banks(self) -> tuple[Org, ...]:
        """Banks added to the running channel later, in the order they joined."""
        return self.banks[self.founding_count :]

    @property
    def peer_orgs(self) -> tuple[Org, ...]:
        """The founding banks, the regulator, then the banks that joined later: the order ports
        and consenter ids are assigned in, so a bank joining never moves an existing org's."""
        return (*self.founders, *self.joined_banks)

    @property
    def orderers(self) -> tuple[OrdererNode, ...]:
        """Every ordering node of the channel, in the order of the orgs that run them."""
        nodes: list[OrdererNode] = []
        for org in self.peer_orgs:
            for local in range(org.orderer_count):
                nodes.append(OrdererNode(org=org, local_index=local, index=len(nodes)))
        return tuple(nodes)

    def orderers_of(self, org: Org) -> tuple[OrdererNode, ...]:
        """The ordering nodes ``org`` runs."""
        return tuple(node for node in self.orderers if node.org.msp_id == org.msp_id)

    @property
    def orderer_orgs(self) -> tuple[Org, ...]:
        return tuple(org for org in self.peer_orgs if org.orderer_count > 0)

    def orderer_node(self, name: str) -> OrdererNode:
        for node in self.orderers:
            if node.name == name:
                return node
        raise KeyError(name)

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
    _no_unknown(
        root, "<root>", {"network", "orderer", "currencies", "banks", "joined_banks", "regulator", "chaincodes"}
    )

    net = _mapping(_required(root, "network", "<root>"), "network")
    _no_unknown(net, "network", {"channel", "domain", "base_port", "crypto"})
    channel = _string(net, "channel", "network", _CHANNEL, "lowercase letters, digits, '.' or '-'")
    domain = _string(net, "domain", "network", _DOMAIN, "a lowercase DNS domain")
    base_port = _integer(net, "base_port", "network", 1024, 60000)
    crypto = net.get("crypto", "ca")
    if crypto not in CRYPTO_SOURCES:
        raise TopologyError(f"network.crypto: expected one of {', '.join(CRYPTO_SOURCES)}, got {crypto!r}")

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
        {"consensus", "batch_timeout", "max_message_count", "preferred_max_bytes"},
    )
    consensus = orderer_raw.get("consensus", "etcdraft")
    if consensus not in CONSENSUS_TYPES:
        raise TopologyError(
            f"orderer.consensus: unknown consensus type {consensus!r} (known: {', '.join(CONSENSUS_TYPES)})"
        )
    ordering = Ordering(
        consensus=consensus,
        batch_timeout=_string(orderer_raw, "batch_timeout", "orderer", _DURATION, "a duration like 250ms"),
        max_message_count=_integer(orderer_raw, "max_message_count", "orderer", 1, 10000),
        preferred_max_bytes=_string(orderer_raw, "preferred_max_bytes", "orderer", _BYTES, "like '2 MB'"),
    )

    banks_raw = _list(_required(root, "banks", "<root>"), "banks")
    if not banks_raw:
        raise TopologyError("banks: at least one bank is required")
    if len(banks_raw) > MAX_BANKS:
        raise TopologyError(f"banks: at most {MAX_BANKS} banks fit the port plan, got {len(banks_raw)}")
    founding = tuple(_org(b, f"banks[{i}]", "bank", domain, currencies) for i, b in enumerate(banks_raw))
    # banks added to the running channel (python -m network add-bank writes this section)
    joined_raw = _list(root.get("joined_banks", []), "joined_banks")
    joined = tuple(_org(b, f"joined_banks[{i}]", "bank", domain, currencies) for i, b in enumerate(joined_raw))
    banks = (*founding, *joined)
    if len(banks) > MAX_BANKS:
        raise TopologyError(f"joined_banks: at most {MAX_BANKS} banks fit the port plan, got {len(banks)}")
    regulator = _org(_required(root, "regulator", "<root>"), "regulator", "regulator", domain, currencies)

    def field_of(org: Org) -> str:
        if org.kind == "regulator":
            return "regulator"
        i = banks.index(org)
        return f"banks[{i}]" if i < len(founding) else f"joined_banks[{i - len(founding)}]"

    seen_names: dict[str, str] = {}
    seen_msps: dict[str, str] = {}
    seen_netns: dict[str, str] = {}
    for org in (*banks, regulator):
        where = field_of(org)
        if org.name.lower() in seen_names:
            raise TopologyError(f"{where}.name: {org.name!r} is already used by {seen_names[org.name.lower()]}")
        if org.msp_id in seen_msps:
            raise TopologyError(f"{where}.msp_id: {org.msp_id!r} is already used by {seen_msps[org.msp_id]}")
        if org.netns and org.netns in seen_netns:
            raise TopologyError(f"{where}.netns: {org.netns!r} is already used by {seen_netns[org.netns]}")
        seen_names[org.name.lower()] = f"{where}.name"
        seen_msps[org.msp_id] = f"{where}.msp_id"
        if org.netns:
            seen_netns[org.netns] = f"{where}.netns"

    orderer_total = sum(org.orderer_count for org in (*banks, regulator))
    if orderer_total == 0:
        raise TopologyError("banks[*].orderers: at least one org must run an ordering node")
    if orderer_total > MAX_ORDERERS:
        raise TopologyError(f"banks[*].orderers: at most {MAX_ORDERERS} ordering nodes fit the port plan")
    if consensus == "BFT" and orderer_total < 4:
        raise TopologyError(
            f"orderer.consensus: BFT needs at least 4 ordering nodes to tolerate one faulty node "
            f"(3f+1), the orgs run {orderer_total}"
        )

    chaincodes_raw = _list(root.get("chaincodes", []), "chaincodes")
    if len(chaincodes_raw) > MAX_CHAINCODES:
        raise TopologyError(f"chaincodes: at most {MAX_CHAINCODES} fit the port plan, got {len(chaincodes_raw)}")
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

    topology = Topology(
        channel=channel,
        domain=domain,
        base_port=base_port,
        orderer=ordering,
        currencies=currencies,
        banks=banks,
        regulator=regulator,
        chaincodes=tuple(chaincodes),
        crypto=crypto,
        source=source,
        founding_banks=len(founding) if joined else None,
    )
    _check_addresses(topology)
    return topology


def _check_addresses(topology: Topology) -> None:
    """No two nodes of the consortium may listen on one host:port."""
    from network.ports import plan_ports

    founding = topology.founding_count
    fields = {org.msp_id: "regulator" if org.kind == "regulator" else
              (f"banks[{i}]" if i < founding else f"joined_banks[{i - founding}]")
              for i, org in enumerate((*topology.banks, topology.regulator))}  # fmt: skip
    owners: dict[tuple[str, int], str] = {}
    for item in plan_ports(topology).listeners():
        if (item.host, item.port) in owners:
            raise TopologyError(
                f"{fields[item.org]}: {item.what} would listen on {item.host}:{item.port}, "
                f"which {owners[(item.host, item.port)]} already uses"
            )
        owners[(item.host, item.port)] = item.what


def _org(raw: Any, where: str, kind: str, domain: str, currencies: dict[str, int]) -> Org:
    org = _mapping(raw, where)
    allowed = {"name", "msp_id", "jurisdiction", "currencies", "host", "orderers", "netns", "port_block"}
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
    host = org.get("host", "127.0.0.1")
    if not isinstance(host, str):
        raise TopologyError(f"{where}.host: expected an IPv4 address, got {host!r}")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError as exc:
        raise TopologyError(f"{where}.host: expected an IPv4 address, got {host!r}") from exc
    if address.is_unspecified or address.is_multicast:
        raise TopologyError(f"{where}.host: {host} cannot be a node's address (it must be dialled by others)")
    orderers = org.get("orderers", 0)
    if isinstance(orderers, bool) or not isinstance(orderers, int) or not 0 <= orderers <= MAX_ORDERERS_PER_ORG:
        raise TopologyError(f"{where}.orderers: expected an integer from 0 to {MAX_ORDERERS_PER_ORG}, got {orderers!r}")
    netns = org.get("netns")
    if netns is not None and (not isinstance(netns, str) or not _NETNS.match(netns)):
        raise TopologyError(f"{where}.netns: expected a namespace name of up to 15 lowercase letters, digits, '-'")
    port_block = org.get("port_block")
    if port_block is not None and (
        isinstance(port_block, bool) or not isinstance(port_block, int) or not 1024 <= port_block <= 65515
    ):
        raise TopologyError(f"{where}.port_block: expected an integer from 1024 to 65515, got {port_block!r}")
    return Org(
        name=name,
        msp_id=_string(org, "msp_id", where, _MSP_ID, "letters and digits ending in 'MSP'"),
        jurisdiction=_string(org, "jurisdiction", where, _JURISDICTION, "2 to 4 capital letters"),
        currencies=tuple(issued),
        kind=kind,
        domain=f"{name.lower()}.{domain}",
        host=str(address),
        orderer_count=orderers,
        netns=netns,
        port_block=port_block,
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
