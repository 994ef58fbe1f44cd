"""A smart contract on a channel: the convenient calls, each built from the proposal steps.

``evaluate_transaction`` = ``new_proposal(...).evaluate()``
``submit_async``         = ``new_proposal(...).endorse().submit()``
``submit_transaction``   = ``submit_async(...)`` then wait for the commit and check it is valid.

Both submits hold a place in the gateway's bound on submissions in flight (``inflight.py``):
``submit_async`` while it endorses and submits, ``submit_transaction`` until the commit is known.
Over the bound they raise ``Overloaded`` before anything is signed or sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .proposal import Argument, Proposal, TransactionContext, build_proposed_transaction

if TYPE_CHECKING:
    from .network import Network
    from .transaction import SubmittedTransaction

__all__ = ["Contract"]


class Contract:
    """Chaincode ``chaincode_name`` on a channel; ``contract_name`` selects one contract of a chaincode
    that holds several (transaction names become ``"<contract_name>:<name>"``)."""

    def __init__(self, network: Network, chaincode_name: str, contract_name: str = "") -> None:
        if not chaincode_name:
            raise ValueError("chaincode name must not be empty")
        self._network = network
        self.chaincode_name = chaincode_name
        self.contract_name = contract_name

    @property
    def network(self) -> Network:
        """The channel this contract is on."""
        return self._network

    def qualified_name(self, transaction_name: str) -> str:
        """The name sent to the chaincode: ``<contract_name>:<name>`` when a contract name is set."""
        return f"{self.contract_name}:{transaction_name}" if self.contract_name else transaction_name

    def new_proposal(
        self,
        name: str,
        *args: Argument,
        transient: Mapping[str, str | bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
    ) -> Proposal:
        """Build an unsigned proposal for transaction ``name``. Private inputs go in ``transient`` (never
        written to the ledger); with private data, name the ``endorsing_organizations`` allowed to see it."""
        gateway = self._network.gateway
        proposed = build_proposed_transaction(
            context=TransactionContext.new(gateway.identity.creator()),
            channel_name=self._network.name,
            chaincode_name=self.chaincode_name,
            transaction_name=self.qualified_name(name),
            arguments=args,
            transient=transient,
            endorsing_organizations=endorsing_organizations,
        )
        return Proposal(gateway, proposed, self._network.name)

    def evaluate_transaction(
        self,
        name: str,
        *args: Argument,
        transient: Mapping[str, str | bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Run a query on one peer and return its result; the ledger is not updated.

        ``endorsing_organizations`` restricts which organisations' peers may run it. Raises
        ``GatewayError``."""
        proposal = self.new_proposal(
            name, *args, transient=transient, endorsing_organizations=endorsing_organizations
        )
        return proposal.evaluate(timeout)

    def submit_async(
        self,
        name: str,
        *args: Argument,
        transient: Mapping[str, str | bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
        follow_up: bool = False,
    ) -> SubmittedTransaction:
        """Endorse and submit; return once the orderer accepted the transaction, before it commits.

        The returned object has ``result`` and ``status(timeout)``. Raises ``Overloaded``,
        ``EndorseError`` or ``SubmitError``. ``follow_up``: the second transaction of work whose first
        one committed (completing a payment, releasing an escrow); it goes ahead of new submissions
        for a place in the bound (``inflight.py``)."""
        with self._network.gateway.submissions.slot(follow_up=follow_up):
            return self._submit_async(name, args, transient, endorsing_organizations)

    def _submit_async(
        self,
        name: str,
        args: tuple[Argument, ...],
        transient: Mapping[str, str | bytes] | None,
        endorsing_organizations: Iterable[str] | None,
    ) -> SubmittedTransaction:
        proposal = self.new_proposal(
            name, *args, transient=transient, endorsing_organizations=endorsing_organizations
        )
        return proposal.endorse().submit()

    def submit_transaction(
        self,
        name: str,
        *args: Argument,
        transient: Mapping[str, str | bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
        commit_timeout: float | None = None,
        follow_up: bool = False,
    ) -> bytes:
        """Endorse, submit and wait for the commit; return the result only once the transaction is valid
        in a block. Raises ``Overloaded``, ``EndorseError``, ``SubmitError``, ``CommitStatusError`` or
        ``CommitError``. ``follow_up``: as for ``submit_async``."""
        with self._network.gateway.submissions.slot(follow_up=follow_up):
            submitted = self._submit_async(name, args, transient, endorsing_organizations)
            return submitted.wait(commit_timeout)
