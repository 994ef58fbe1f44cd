"""The stub interface a contract sees.

The real stub (backed by the peer over gRPC) and the in-memory stub used by contract
unit tests both implement :class:`Stub`. Contract code depends only on this module,
never on gRPC, so the money rules stay plain Python.

Semantics that every implementation keeps, because Fabric does:
- a read never sees the transaction's own uncommitted writes;
- ``get_state`` of an absent key returns ``b""``;
- private-data calls name a collection; reading a collection the peer's org is not a
  member of fails, but ``get_private_data_hash`` works for everyone;
- composite keys are ``"\\x00" + type + "\\x00" + attr + "\\x00" ...``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

COMPOSITE_KEY_NAMESPACE = "\x00"
MIN_UNICODE_RUNE = "\x00"
MAX_UNICODE_RUNE = "\U0010ffff"


@dataclass(frozen=True)
class KV:
    """One result of a range or partial-composite-key query."""

    key: str
    value: bytes
    namespace: str = ""


@dataclass(frozen=True)
class KeyModification:
    """One entry of a key's history."""

    tx_id: str
    value: bytes
    timestamp: dt.datetime
    is_delete: bool


@dataclass(frozen=True)
class QueryPage:
    """A page of a paginated query: the results and the bookmark for the next page.

    ``bookmark`` is ``""`` when there are no more results.
    """

    results: list[KV]
    fetched_records_count: int
    bookmark: str


@dataclass(frozen=True)
class ClientIdentity:
    """The transaction creator, parsed from the signed proposal."""

    msp_id: str
    certificate_pem: bytes
    subject: str = ""
    issuer: str = ""
    organizational_units: tuple[str, ...] = field(default_factory=tuple)
    common_name: str = ""

    @property
    def id(self) -> str:
        """Stable identifier in the style of the Go and Node client-identity libraries."""
        return f"x509::{self.subject}::{self.issuer}"

    def has_ou(self, ou: str) -> bool:
        return ou in self.organizational_units


class Stub(Protocol):
    """Everything a transaction function may ask of the ledger."""

    # -- transaction context -------------------------------------------------
    def get_tx_id(self) -> str: ...
    def get_channel_id(self) -> str: ...
    def get_tx_timestamp(self) -> dt.datetime: ...
    def get_function_and_parameters(self) -> tuple[str, list[str]]: ...
    def get_args(self) -> list[bytes]: ...
    def get_transient(self) -> Mapping[str, bytes]: ...
    def get_creator(self) -> bytes: ...
    def get_client_identity(self) -> ClientIdentity: ...
    def get_binding(self) -> bytes: ...
    def get_peer_msp_id(self) -> str:
        """MSP id of the peer running this simulation (from the proposal's target, or env)."""
        ...

    # -- public state --------------------------------------------------------
    def get_state(self, key: str) -> bytes: ...
    def get_state_multiple(self, keys: Sequence[str]) -> list[bytes]: ...
    def put_state(self, key: str, value: bytes) -> None: ...
    def del_state(self, key: str) -> None: ...
    def get_state_by_range(self, start_key: str, end_key: str) -> Iterator[KV]: ...
    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage: ...
    def get_state_by_partial_composite_key(self, object_type: str, attributes: Sequence[str]) -> Iterator[KV]: ...
    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = ""
    ) -> QueryPage: ...
    def get_history_for_key(self, key: str) -> Iterator[KeyModification]: ...

    # -- private data --------------------------------------------------------
    def get_private_data(self, collection: str, key: str) -> bytes: ...
    def get_private_data_multiple(self, collection: str, keys: Sequence[str]) -> list[bytes]: ...
    def get_private_data_hash(self, collection: str, key: str) -> bytes: ...
    def put_private_data(self, collection: str, key: str, value: bytes) -> None: ...
    def del_private_data(self, collection: str, key: str) -> None: ...
    def purge_private_data(self, collection: str, key: str) -> None: ...
    def get_private_data_by_range(self, collection: str, start_key: str, end_key: str) -> Iterator[KV]: ...
    def get_private_data_by_partial_composite_key(
        self, collection: str, object_type: str, attributes: Sequence[str]
    ) -> Iterator[KV]: ...

    # -- state-based endorsement --------------------------------------------
    def get_state_validation_parameter(self, key: str) -> bytes: ...
    def set_state_validation_parameter(self, key: str, policy: bytes) -> None: ...
    def get_private_data_validation_parameter(self, collection: str, key: str) -> bytes: ...
    def set_private_data_validation_parameter(self, collection: str, key: str, policy: bytes) -> None: ...

    # -- events --------------------------------------------------------------
    def set_event(self, name: str, payload: bytes) -> None: ...

    # -- composite keys ------------------------------------------------------
    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str: ...
    def split_composite_key(self, composite_key: str) -> tuple[str, list[str]]: ...


def create_composite_key(object_type: str, attributes: Sequence[str]) -> str:
    """Build a composite key exactly as the Go shim does, validating each part."""
    _validate_composite_part(object_type)
    key = COMPOSITE_KEY_NAMESPACE + object_type + MIN_UNICODE_RUNE
    for attribute in attributes:
        _validate_composite_part(attribute)
        key += attribute + MIN_UNICODE_RUNE
    return key


def split_composite_key(composite_key: str) -> tuple[str, list[str]]:
    """Inverse of :func:`create_composite_key`."""
    if not composite_key.startswith(COMPOSITE_KEY_NAMESPACE):
        raise ValueError("not a composite key")
    parts = composite_key[1:].split(MIN_UNICODE_RUNE)
    # the key ends with a separator, so the last part is always empty
    if not parts or parts[-1] != "":
        raise ValueError("malformed composite key")
    parts = parts[:-1]
    return parts[0], parts[1:]


def _validate_composite_part(part: str) -> None:
    if MIN_UNICODE_RUNE in part or MAX_UNICODE_RUNE in part:
        raise ValueError("composite key parts may not contain U+0000 or U+10FFFF")


class LedgerError(Exception):
    """The peer refused a ledger request (for example: no read access to a collection).

    The message is the peer's own explanation. Contracts may catch it; uncaught, the
    contract layer turns it into a 500 response carrying the message.
    """
