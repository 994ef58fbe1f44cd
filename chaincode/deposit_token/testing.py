"""An in-memory channel that keeps the Fabric semantics the money rules depend on.

Used by the contract's unit tests; not deployed. One :class:`MemoryChannel` holds the
committed public state, every private collection, state-based policies and key history
for one chaincode namespace. A transaction is first *simulated* on one org's peer
(:meth:`MemoryChannel.simulate`), which yields its read/write set, response and event
without changing anything; then a list of simulations is *committed* as one block
(:meth:`MemoryChannel.commit`), which validates each in order as a committing peer would.

What it keeps from Fabric:

- a read never sees the transaction's own writes;
- reads record the committed version they saw; at commit a changed version fails the
  transaction with ``MVCC_READ_CONFLICT``, and a public range scan whose keys or versions
  changed fails it with ``PHANTOM_READ_CONFLICT``;
- private-data range scans are refused in a transaction that writes (and writes after
  one are refused), and so are paginated queries: Fabric's tx simulator rules;
- every org's implicit collection (``_implicit_org_<MSP>``): its only member is the org,
  a write needs the org's peer, and, as in Fabric, ``memberOnlyRead``/``memberOnlyWrite``
  are off, so another org's client may read it through the org's own peer;
- collection membership: with ``memberOnlyRead``/``memberOnlyWrite`` a creator outside
  the collection is refused; a peer outside the collection does not hold its values
  (reads return nothing) but ``get_private_data_hash`` answers on every peer;
- endorsement at commit: every written key (public, private, metadata) must satisfy its
  state-based policy if the key has one, else the collection's endorsement policy for a
  private key, else the chaincode policy; otherwise ``ENDORSEMENT_POLICY_FAILURE``. A
  policy change is checked against the policy in force before it, a value-only write
  keeps the key's policy, a delete drops it, and a transaction writing a key whose
  policy an earlier transaction of the same block changed fails (as in Fabric);
- endorsement policy failures are reported before MVCC conflicts, as in Fabric where
  validation plugins run before the MVCC check;
- one event per transaction (the last one set wins).

Its limits (what it does not model):

- one channel, one chaincode namespace, no chaincode-to-chaincode calls, no rich queries;
- every org has one peer, and an endorsement is "this org's peer signed"; principals
  other than ``peer`` and ``member`` roles are not evaluated, and signatures are not
  checked at all;
- no gossip: private data is on every member peer at once (no missing private data, no
  ``requiredPeerCount``/``maxPeerCount``, no reconciliation), no ``blockToLive``;
  purge behaves as delete and keeps no hashes;
- no orderer: the caller chooses which simulations form a block and in which order;
- transaction ids are deterministic hex strings and timestamps come from the channel's
  clock (:meth:`MemoryChannel.advance`), not from signed proposals;
- endorsement by several orgs re-runs the simulation on each and requires identical
  results, but does not model the gateway's choice of peers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaincode.deposit_token.collections import books_collection, collections_config, signature_policy_any
from chaincode.shim.api import (
    KV,
    MAX_UNICODE_RUNE,
    ClientIdentity,
    KeyModification,
    LedgerError,
    QueryPage,
    create_composite_key,
    split_composite_key,
)
from chaincode.shim.contract import Contract, ContractRouter
from chaincode.shim.endorsement import read_key_endorsers

VALID = "VALID"
MVCC_READ_CONFLICT = "MVCC_READ_CONFLICT"
PHANTOM_READ_CONFLICT = "PHANTOM_READ_CONFLICT"
ENDORSEMENT_POLICY_FAILURE = "ENDORSEMENT_POLICY_FAILURE"

Version = tuple[int, int]
PUBLIC = ""  # the collection name of public state in the maps below


# -- signature-policy DSL (OR / AND / OutOf over 'MSP.role') ---------------------


@dataclass(frozen=True)
class Policy:
    """``n`` of ``rules`` must hold; a rule is a principal ``(msp, role)`` or a nested policy."""

    n: int
    rules: tuple[Policy | tuple[str, str], ...]

    def satisfied_by(self, endorsing_orgs: Iterable[str]) -> bool:
        orgs = set(endorsing_orgs)
        held = 0
        for rule in self.rules:
            if isinstance(rule, Policy):
                held += rule.satisfied_by(orgs)
            else:
                # One peer per org: its signature satisfies both the peer and member roles.
                msp, role = rule
                held += msp in orgs and role in ("peer", "member")
        return held >= self.n


_TOKEN = re.compile(r"\s*(OR|AND|OutOf|\(|\)|,|'[^']*'|[0-9]+)")


def parse_policy(text: str) -> Policy:
    tokens = [token.strip() for token in _TOKEN.findall(text)]
    if "".join(tokens).replace(" ", "") != text.replace(" ", ""):
        raise ValueError(f"cannot parse policy {text!r}")
    position = 0

    def next_token() -> str:
        nonlocal position
        if position >= len(tokens):
            raise ValueError(f"policy {text!r} ends too early")
        position += 1
        return tokens[position - 1]

    def expression() -> Policy | tuple[str, str]:
        token = next_token()
        if token.startswith("'"):
            msp, _, role = token.strip("'").rpartition(".")
            return msp, role.lower()
        if token not in ("OR", "AND", "OutOf"):
            raise ValueError(f"unexpected {token!r} in policy {text!r}")
        if next_token() != "(":
            raise ValueError(f"expected '(' in policy {text!r}")
        n: int | None = None
        if token == "OutOf":
            n = int(next_token())
            next_token()  # the comma after the number
        rules: list[Policy | tuple[str, str]] = []
        while True:
            rules.append(expression())
            if next_token() == ")":
                break
        if token == "OR":
            n = 1
        elif token == "AND":
            n = len(rules)
        assert n is not None
        return Policy(n, tuple(rules))

    result = expression()
    if position != len(tokens):
        raise ValueError(f"unexpected text after the policy in {text!r}")
    if isinstance(result, tuple):
        return Policy(1, (result,))
    return result


def _members(policy_text: str) -> set[str]:
    return {msp for msp, _ in _principals(parse_policy(policy_text))}


def _principals(policy: Policy) -> Iterator[tuple[str, str]]:
    for rule in policy.rules:
        if isinstance(rule, Policy):
            yield from _principals(rule)
        else:
            yield rule


# -- state ----------------------------------------------------------------------


def _check_simple_keys(*keys: str) -> None:
    """The shims (Go, Node, ours) refuse composite keys as plain range bounds."""
    for key in keys:
        if key.startswith("\x00"):
            raise ValueError("a simple key may not start with U+0000 (the composite-key namespace)")


@dataclass
class _Versioned:
    value: bytes
    version: Version
    policy: bytes = b""


def _org_endorsement_rule(reference: str) -> str:
    """The rule behind an org's channel-config ``Endorsement`` policy (as network/material.py writes it)."""
    parts = reference.split("/")
    if len(parts) != 5 or parts[:3] != ["", "Channel", "Application"] or parts[4] != "Endorsement":
        raise ValueError(f"only /Channel/Application/<MSP>/Endorsement references are modelled, got {reference!r}")
    return signature_policy_any([parts[3]])


@dataclass
class _Collection:
    name: str
    members: set[str]
    endorsement: Policy | None
    member_only_read: bool
    member_only_write: bool


@dataclass
class RWSet:
    """What a simulation read and wrote, keyed by collection (``""`` is public state)."""

    reads: dict[tuple[str, str], Version | None] = field(default_factory=dict)
    ranges: list[tuple[str, str, list[tuple[str, Version]]]] = field(default_factory=list)
    writes: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    policy_writes: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def describe(self) -> Any:
        return (
            sorted(self.reads.items()),
            self.ranges,
            sorted((k, v) for k, v in self.writes.items()),
            sorted(self.policy_writes.items()),
        )


@dataclass
class Simulation:
    """An endorsed transaction, ready to be put in a block."""

    tx_id: str
    function: str
    status: int
    message: str
    payload: bytes
    event: tuple[str, bytes] | None
    rwset: RWSet
    endorsers: set[str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


@dataclass
class CommittedEvent:
    tx_id: str
    name: str
    payload: bytes


class MemoryChannel:
    """Committed state of one chaincode namespace on a channel, shared by every org's peer."""

    def __init__(
        self,
        contract: Contract,
        orgs: Sequence[str],
        collections: list[dict[str, Any]],
        chaincode_policy: str | None = None,
        start: dt.datetime = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC),
    ) -> None:
        self.router = ContractRouter([contract])
        self.orgs = list(orgs)
        self.chaincode_policy = parse_policy(chaincode_policy or signature_policy_any(self.orgs))
        # Fabric gives every org of the channel an implicit collection (deployedcc_infoprovider.go,
        # GenerateImplicitCollectionForOrg): member the org, endorsed by the org's Endorsement
        # policy, and neither memberOnlyRead nor memberOnlyWrite.
        self.collections: dict[str, _Collection] = {
            books_collection(org): _Collection(
                name=books_collection(org),
                members={org},
                endorsement=parse_policy(signature_policy_any([org])),
                member_only_read=False,
                member_only_write=False,
            )
            for org in self.orgs
        }
        for item in collections:
            endorsement = item.get("endorsementPolicy")
            signature = endorsement.get("signaturePolicy") if isinstance(endorsement, dict) else None
            reference = endorsement.get("channelConfigPolicy") if isinstance(endorsement, dict) else None
            if reference:
                signature = _org_endorsement_rule(str(reference))
            self.collections[str(item["name"])] = _Collection(
                name=str(item["name"]),
                members=_members(str(item["policy"])),
                endorsement=parse_policy(signature) if signature else None,
                member_only_read=bool(item.get("memberOnlyRead", False)),
                member_only_write=bool(item.get("memberOnlyWrite", False)),
            )
        self.state: dict[str, dict[str, _Versioned]] = {PUBLIC: {}, **{name: {} for name in self.collections}}
        self.history: dict[str, list[KeyModification]] = {}
        self.events: list[CommittedEvent] = []
        self.validation_codes: dict[str, str] = {}
        self.now = start
        self._block = 0
        self._tx_counter = 0

    @classmethod
    def for_deposit_tokens(
        cls, contract: Contract, banks: Sequence[str], observers: Sequence[str] = ()
    ) -> MemoryChannel:
        return cls(contract, [*banks, *observers], collections_config(list(banks), observers))

    # -- time -------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    # -- endorsement -------------------------------------------------------------
    def simulate(
        self,
        org: str,
        function: str,
        args: Sequence[str] = (),
        transient: Mapping[str, Any] | None = None,
        creator: str | None = None,
        endorsing_orgs: Sequence[str] | None = None,
        router: ContractRouter | None = None,
    ) -> Simulation:
        """Run a transaction on ``org``'s peer (and on the other endorsing orgs' peers).

        ``transient`` values that are not bytes are JSON-encoded. ``creator`` defaults to
        ``org`` (a client of the peer's own org). ``router`` runs other contract code on
        these peers, to model a bank whose chaincode was altered.
        """
        self._tx_counter += 1
        tx_id = hashlib.sha256(f"tx-{self._tx_counter}".encode()).hexdigest()
        encoded = {
            name: value if isinstance(value, bytes) else json.dumps(value).encode()
            for name, value in (transient or {}).items()
        }
        results: list[Simulation] = []
        for peer in endorsing_orgs or [org]:
            stub = MemoryStub(self, peer, creator or org, tx_id, [function, *args], encoded, self.now)
            response = (router or self.router).dispatch(stub)
            results.append(
                Simulation(
                    tx_id=tx_id,
                    function=function,
                    status=response.status,
                    message=response.message,
                    payload=response.payload,
                    event=stub.event,
                    rwset=stub.rwset,
                    endorsers={peer},
                )
            )
        first = results[0]
        for other in results[1:]:
            if (other.status, other.payload, other.event, other.rwset.describe()) != (
                first.status,
                first.payload,
                first.event,
                first.rwset.describe(),
            ):
                raise LedgerError("endorsements differ between the endorsing peers")
            first.endorsers |= other.endorsers
        return first

    def query(
        self,
        org: str,
        function: str,
        args: Sequence[str] = (),
        transient: Mapping[str, Any] | None = None,
        creator: str | None = None,
    ) -> Simulation:
        """Run a query on ``org``'s peer; nothing is committed."""
        return self.simulate(org, function, args, transient, creator)

    def invoke(
        self,
        org: str,
        function: str,
        args: Sequence[str] = (),
        transient: Mapping[str, Any] | None = None,
        creator: str | None = None,
    ) -> Simulation:
        """Endorse on ``org`` and, if the chaincode answered success, commit in a block of one."""
        simulation = self.simulate(org, function, args, transient, creator)
        if simulation.ok:
            self.commit([simulation])
        return simulation

    # -- validation and commit ---------------------------------------------------
    def commit(self, block: Sequence[Simulation]) -> list[str]:
        """Validate and apply ``block`` in order; returns each transaction's validation code."""
        self._block += 1
        policy_changed: set[tuple[str, str]] = set()
        codes: list[str] = []
        for index, simulation in enumerate(block):
            code = self._validate(simulation, policy_changed)
            if code == VALID:
                self._apply(simulation, (self._block, index), policy_changed)
            codes.append(code)
            self.validation_codes[simulation.tx_id] = code
        return codes

    def _policy_for(self, collection: str, key: str) -> Policy:
        current = self.state[collection].get(key)
        if current is not None and current.policy:
            parsed = read_key_endorsers(current.policy)
            assert parsed is not None
            return Policy(parsed.n, tuple((msp, parsed.role) for msp in parsed.msp_ids))
        if collection != PUBLIC and self.collections[collection].endorsement is not None:
            endorsement = self.collections[collection].endorsement
            assert endorsement is not None
            return endorsement
        return self.chaincode_policy

    def _validate(self, simulation: Simulation, policy_changed: set[tuple[str, str]]) -> str:
        rwset = simulation.rwset
        for location in [*rwset.writes, *rwset.policy_writes]:
            if location in policy_changed:
                return ENDORSEMENT_POLICY_FAILURE
            if not self._policy_for(*location).satisfied_by(simulation.endorsers):
                return ENDORSEMENT_POLICY_FAILURE
        for location, version in rwset.reads.items():
            current = self.state[location[0]].get(location[1])
            if (current.version if current else None) != version:
                return MVCC_READ_CONFLICT
        for start, end, seen in rwset.ranges:
            if self._range_versions(start, end) != seen:
                return PHANTOM_READ_CONFLICT
        return VALID

    def _apply(self, simulation: Simulation, version: Version, policy_changed: set[tuple[str, str]]) -> None:
        rwset = simulation.rwset
        for (collection, key), value in rwset.writes.items():
            space = self.state[collection]
            if value is None:
                space.pop(key, None)
            else:
                kept = space[key].policy if key in space else b""
                space[key] = _Versioned(value, version, kept)
            if collection == PUBLIC:
                self.history.setdefault(key, []).append(
                    KeyModification(simulation.tx_id, value or b"", self.now, value is None)
                )
        for (collection, key), policy in rwset.policy_writes.items():
            current = self.state[collection].get(key)
            if current is None:
                continue  # Fabric ignores a policy on a key that does not exist
            current.policy = policy
            current.version = version
            policy_changed.add((collection, key))
        if simulation.event is not None:
            self.events.append(CommittedEvent(simulation.tx_id, *simulation.event))

    def _range_versions(self, start: str, end: str) -> list[tuple[str, Version]]:
        space = self.state[PUBLIC]
        return [(key, space[key].version) for key in sorted(space) if start <= key < end]

    # -- inspection (what any org could see in blocks and public state) ---------
    def public_items(self) -> dict[str, bytes]:
        return {key: item.value for key, item in self.state[PUBLIC].items()}

    def private_items(self, collection: str) -> dict[str, bytes]:
        return {key: item.value for key, item in self.state[collection].items()}


class MemoryStub:
    """The :class:`~chaincode.shim.api.Stub` of one simulation on one org's peer."""

    def __init__(
        self,
        channel: MemoryChannel,
        peer: str,
        creator: str,
        tx_id: str,
        args: Sequence[str],
        transient: Mapping[str, bytes],
        timestamp: dt.datetime,
    ) -> None:
        self._channel = channel
        self._peer = peer
        self._creator = creator
        self._tx_id = tx_id
        self._args = [arg.encode("utf-8") for arg in args]
        self._transient = dict(transient)
        self._timestamp = timestamp
        self._read_only = False
        self._wrote = False
        self._private_query = False
        self._paginated_query = False
        self.rwset = RWSet()
        self.event: tuple[str, bytes] | None = None

    # -- transaction context -------------------------------------------------
    def get_tx_id(self) -> str:
        return self._tx_id

    def get_channel_id(self) -> str:
        return "memory"

    def get_tx_timestamp(self) -> dt.datetime:
        return self._timestamp

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        strings = [arg.decode() for arg in self._args]
        return strings[0], strings[1:]

    def get_args(self) -> list[bytes]:
        return list(self._args)

    def get_transient(self) -> Mapping[str, bytes]:
        return dict(self._transient)

    def get_creator(self) -> bytes:
        return self._creator.encode()

    def get_client_identity(self) -> ClientIdentity:
        return ClientIdentity(msp_id=self._creator, certificate_pem=b"", common_name=f"User1@{self._creator}")

    def get_binding(self) -> bytes:
        return hashlib.sha256(self._tx_id.encode()).digest()

    def get_peer_msp_id(self) -> str:
        return self._peer

    def restrict_to_reads(self, function_name: str) -> None:
        self._read_only = True

    # -- reads ---------------------------------------------------------------
    def _read(self, collection: str, key: str) -> bytes:
        item = self._channel.state[collection].get(key)
        self.rwset.reads.setdefault((collection, key), item.version if item else None)
        return item.value if item else b""

    def get_state(self, key: str) -> bytes:
        return self._read(PUBLIC, key)

    def get_state_multiple(self, keys: Sequence[str]) -> list[bytes]:
        return [self.get_state(key) for key in keys]

    def _scan(self, start: str, end: str) -> list[KV]:
        space = self._channel.state[PUBLIC]
        found = sorted(key for key in space if start <= key < (end or MAX_UNICODE_RUNE))
        self.rwset.ranges.append((start, end or MAX_UNICODE_RUNE, [(key, space[key].version) for key in found]))
        return [KV(key, space[key].value) for key in found]

    def get_state_by_range(self, start_key: str, end_key: str) -> Iterator[KV]:
        _check_simple_keys(start_key, end_key)
        return iter(self._scan(start_key, end_key))

    def _paginate(self, results: list[KV], page_size: int, bookmark: str) -> QueryPage:
        if self._wrote:
            raise LedgerError("Paginated queries are supported only in a read-only transaction")
        self._paginated_query = True
        page = [kv for kv in results if kv.key >= bookmark][: page_size + 1]
        next_bookmark = page[page_size].key if len(page) > page_size else ""
        return QueryPage(page[:page_size], min(len(page), page_size), next_bookmark)

    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage:
        _check_simple_keys(start_key, end_key)
        return self._paginate(self._scan(start_key, end_key), page_size, bookmark)

    def get_state_by_partial_composite_key(self, object_type: str, attributes: Sequence[str]) -> Iterator[KV]:
        start = create_composite_key(object_type, attributes)
        return iter(self._scan(start, start + MAX_UNICODE_RUNE))

    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = ""
    ) -> QueryPage:
        start = create_composite_key(object_type, attributes)
        return self._paginate(self._scan(start, start + MAX_UNICODE_RUNE), page_size, bookmark)

    def get_history_for_key(self, key: str) -> Iterator[KeyModification]:
        return iter(list(reversed(self._channel.history.get(key, []))))

    # -- private data --------------------------------------------------------
    def _collection(self, name: str) -> _Collection:
        collection = self._channel.collections.get(name)
        if collection is None:
            raise LedgerError(f"collection {name} could not be found")
        return collection

    def _check_read(self, name: str) -> _Collection:
        collection = self._collection(name)
        if collection.member_only_read and self._creator not in collection.members:
            raise LedgerError(f"tx creator does not have read access permission on privatedata in collection {name}")
        return collection

    def get_private_data(self, collection: str, key: str) -> bytes:
        info = self._check_read(collection)
        value = self._read(collection, key)
        # A peer outside the collection holds only hashes, never the value.
        return value if self._peer in info.members else b""

    def get_private_data_multiple(self, collection: str, keys: Sequence[str]) -> list[bytes]:
        return [self.get_private_data(collection, key) for key in keys]

    def get_private_data_hash(self, collection: str, key: str) -> bytes:
        self._collection(collection)
        value = self._read(collection, key)
        return hashlib.sha256(value).digest() if value else b""

    def get_private_data_by_range(self, collection: str, start_key: str, end_key: str) -> Iterator[KV]:
        _check_simple_keys(start_key, end_key)
        return self._private_scan(collection, start_key, end_key)

    def _private_scan(self, collection: str, start_key: str, end_key: str) -> Iterator[KV]:
        info = self._check_read(collection)
        if self._wrote:
            raise LedgerError("Queries on pvt data is supported only in a read-only transaction")
        self._private_query = True
        if self._peer not in info.members:
            return iter([])
        space = self._channel.state[collection]
        found = sorted(key for key in space if start_key <= key < (end_key or MAX_UNICODE_RUNE))
        return iter([KV(key, space[key].value) for key in found])

    def get_private_data_by_partial_composite_key(
        self, collection: str, object_type: str, attributes: Sequence[str]
    ) -> Iterator[KV]:
        start = create_composite_key(object_type, attributes)
        return self._private_scan(collection, start, start + MAX_UNICODE_RUNE)

    # -- writes --------------------------------------------------------------
    def _check_write(self, collection: str) -> None:
        if self._read_only:
            raise LedgerError("this function is a query and may not write")
        if self._private_query:
            raise LedgerError("Transaction has already performed queries on pvt data. Writes are not allowed")
        if self._paginated_query:
            raise LedgerError("Transaction has already performed a paginated query. Writes are not allowed")
        if collection != PUBLIC:
            info = self._collection(collection)
            if info.member_only_write and self._creator not in info.members:
                raise LedgerError(f"tx creator does not have write access permission on privatedata in {collection}")
        self._wrote = True

    def put_state(self, key: str, value: bytes) -> None:
        if not key:
            raise LedgerError("key must not be an empty string")
        self._check_write(PUBLIC)
        self.rwset.writes[(PUBLIC, key)] = bytes(value) if value else None

    def del_state(self, key: str) -> None:
        self._check_write(PUBLIC)
        self.rwset.writes[(PUBLIC, key)] = None

    def put_private_data(self, collection: str, key: str, value: bytes) -> None:
        self._check_write(collection)
        self.rwset.writes[(collection, key)] = bytes(value) if value else None

    def del_private_data(self, collection: str, key: str) -> None:
        self._check_write(collection)
        self.rwset.writes[(collection, key)] = None

    def purge_private_data(self, collection: str, key: str) -> None:
        self.del_private_data(collection, key)

    # -- state-based endorsement --------------------------------------------
    def get_state_validation_parameter(self, key: str) -> bytes:
        item = self._channel.state[PUBLIC].get(key)
        return item.policy if item else b""

    def set_state_validation_parameter(self, key: str, policy: bytes) -> None:
        self._check_write(PUBLIC)
        self.rwset.policy_writes[(PUBLIC, key)] = policy

    def get_private_data_validation_parameter(self, collection: str, key: str) -> bytes:
        self._check_read(collection)
        item = self._channel.state[collection].get(key)
        return item.policy if item else b""

    def set_private_data_validation_parameter(self, collection: str, key: str, policy: bytes) -> None:
        self._check_write(collection)
        self.rwset.policy_writes[(collection, key)] = policy

    # -- events and keys ------------------------------------------------------
    def set_event(self, name: str, payload: bytes) -> None:
        self.event = (name, bytes(payload))

    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str:
        return create_composite_key(object_type, attributes)

    def split_composite_key(self, composite_key: str) -> tuple[str, list[str]]:
        return split_composite_key(composite_key)
