"""Block and transaction queries through the peer's query system chaincode (``qscc``).

The official clients leave this to ``network.get_contract("qscc").evaluate_transaction(...)`` and the
caller's own protobuf decoding; here each query is one call that returns the decoded message. Every query
is an evaluate: it runs on one peer of the gateway's choosing (its own organisation's first), changes
nothing, and needs the channel's ``Readers`` right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.peer import transaction_pb2

from .errors import GatewayError

if TYPE_CHECKING:
    from .network import Network

__all__ = ["QSCC", "Ledger"]

QSCC = "qscc"


class Ledger:
    """Read blocks and transactions of one channel: ``network.get_ledger()``.

    Every method raises ``GatewayError`` when the peer refuses (for example NOT_FOUND-like chaincode
    errors for an unknown block or transaction: ``error.chaincode_status == 500``) or cannot be reached,
    and ``timeout`` bounds the call (default: the gateway's evaluate deadline)."""

    def __init__(self, network: Network) -> None:
        self._network = network
        self._qscc = network.get_contract(QSCC)

    def _query(self, function: str, *args: str | bytes | int, timeout: float | None) -> bytes:
        return self._qscc.evaluate_transaction(function, self._network.name, *args, timeout=timeout)

    def chain_info(self, timeout: float | None = None) -> Any:
        """``common.BlockchainInfo``: ``height`` (number of blocks), ``currentBlockHash``,
        ``previousBlockHash`` as the peer sees them now."""
        return ledger_pb2.BlockchainInfo.FromString(self._query("GetChainInfo", timeout=timeout))

    def height(self, timeout: float | None = None) -> int:
        """Number of blocks on the peer's ledger: the next block to commit has this number."""
        return int(self.chain_info(timeout).height)

    def block(self, number: int, timeout: float | None = None) -> Any:
        """``common.Block`` number ``number``."""
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"block number must be a non-negative integer, got {number!r}")
        return common_pb2.Block.FromString(self._query("GetBlockByNumber", number, timeout=timeout))

    def block_by_hash(self, block_hash: bytes, timeout: float | None = None) -> Any:
        """``common.Block`` whose header hashes to ``block_hash``."""
        return common_pb2.Block.FromString(self._query("GetBlockByHash", block_hash, timeout=timeout))

    def block_by_transaction_id(self, transaction_id: str, timeout: float | None = None) -> Any:
        """``common.Block`` that holds transaction ``transaction_id``."""
        return common_pb2.Block.FromString(self._query("GetBlockByTxID", transaction_id, timeout=timeout))

    def transaction(self, transaction_id: str, timeout: float | None = None) -> Any:
        """``peer.ProcessedTransaction``: the transaction envelope and its ``validationCode``."""
        return transaction_pb2.ProcessedTransaction.FromString(
            self._query("GetTransactionByID", transaction_id, timeout=timeout)
        )

    def validation_code(self, transaction_id: str, timeout: float | None = None) -> int | None:
        """The ``TxValidationCode`` the peer recorded for ``transaction_id`` (``0``, ``VALID``, when it changed
        the ledger), or ``None`` when the peer's ledger has no such transaction (not ordered, or not yet
        committed on this peer). Raises ``GatewayError`` when the peer cannot say (unreachable, say)."""
        try:
            return int(self.transaction(transaction_id, timeout).validationCode)
        except GatewayError as error:
            # qscc: "Failed to get transaction with id <id>, error no such transaction ID [<id>] in index"
            if error.chaincode_status is not None and "no such transaction ID" in (error.chaincode_message or ""):
                return None
            raise
