"""Python client for the Hyperledger Fabric Gateway service (Fabric v2.4+).

Shaped like the official Go/Node/Java fabric-gateway clients:
Gateway -> Network (channel) -> Contract -> Proposal -> Transaction -> Commit.

A distribution of its own (``pip install ./gateway/fabric_client``), imported as ``fabric_client``, on
which the deposit-token project depends like any other package.
"""

__version__ = "0.1.0"

if __name__ != "fabric_client":
    # Imported through the project's folder (``gateway.fabric_client``), it would be a second copy whose
    # exceptions an ``except fabric_client.GatewayError`` does not catch.
    raise ImportError(f"import the Fabric client as fabric_client, not {__name__}")

from .block_events import BlockEventStream
from .chaincode_events import ChaincodeEvent, ChaincodeEventsRequest, ChaincodeEventStream
from .checkpointer import Checkpointer, FileCheckpointer, InMemoryCheckpointer, SqliteCheckpointer
from .client import Deadlines
from .commit import Commit, Status
from .contract import Contract
from .discovery import ChannelPeer
from .errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    ErrorDetail,
    GatewayError,
    Overloaded,
    SubmitError,
)
from .gateway import Gateway, connect
from .grouping import GroupCommit
from .identity import Identity
from .inflight import DEFAULT_MAX_IN_FLIGHT, FOLLOW_UP_WAIT, SubmissionLimit
from .ledger import Ledger
from .network import Network
from .proposal import Proposal
from .retry import submit_idempotent, submit_with_retry
from .signer import ECDSASigner, Signer, sha256
from .transaction import SubmittedTransaction, Transaction

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "FOLLOW_UP_WAIT",
    "BlockEventStream",
    "ChaincodeEvent",
    "ChaincodeEventStream",
    "ChaincodeEventsRequest",
    "ChannelPeer",
    "Checkpointer",
    "Commit",
    "CommitError",
    "CommitStatusError",
    "Contract",
    "Deadlines",
    "ECDSASigner",
    "EndorseError",
    "ErrorDetail",
    "FileCheckpointer",
    "Gateway",
    "GatewayError",
    "GroupCommit",
    "Identity",
    "InMemoryCheckpointer",
    "Ledger",
    "Network",
    "Overloaded",
    "Proposal",
    "Signer",
    "SqliteCheckpointer",
    "Status",
    "SubmissionLimit",
    "SubmitError",
    "SubmittedTransaction",
    "Transaction",
    "connect",
    "sha256",
    "submit_idempotent",
    "submit_with_retry",
]
