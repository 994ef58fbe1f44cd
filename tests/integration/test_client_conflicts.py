"""Read conflicts and stopped peers on the real network."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from fabric_client import CommitError, Contract, Gateway, GatewayError, submit_with_retry
from fabric_client.profile import connect_org
from fabric_protos.peer import transaction_pb2

from tests.integration.client_helpers import CHAINCODE, profile_path_for, unique

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def client_profile(request: pytest.FixtureRequest) -> Path:
    return profile_path_for(request)


@pytest.fixture(scope="module")
def gateway(client_profile: Path) -> Iterator[Gateway]:
    with connect_org(client_profile, "USBankMSP") as connected:
        yield connected


def counter(contract: Contract, key: str) -> int:
    [value] = json.loads(contract.evaluate_transaction("GetStateMultiple", key))
    return int(value or 0)


def test_two_read_modify_writes_of_one_key_conflict(gateway: Gateway) -> None:
    """Both transactions are endorsed against the same version of the key; the one ordered second is
    invalidated at commit with MVCC_READ_CONFLICT and changes nothing."""
    contract = gateway.get_network("tokens").get_contract(CHAINCODE)
    key = unique("client-counter")
    first = contract.new_proposal("BumpCounters", key).endorse()
    second = contract.new_proposal("BumpCounters", key).endorse()

    winner = first.submit()
    winner_status = winner.status()
    loser = second.submit()
    with pytest.raises(CommitError) as caught:
        loser.wait()

    assert winner_status.successful
    error = caught.value
    assert (error.code, error.code_name) == (transaction_pb2.MVCC_READ_CONFLICT, "MVCC_READ_CONFLICT")
    assert error.is_retryable
    assert error.transaction_id == loser.transaction_id
    assert error.block_number >= winner_status.block_number
    assert counter(contract, key) == 1


class RacedContract(Contract):
    """Lets a rival transaction commit between its endorsement and its submission, ``races`` times:
    the read conflict a busy key produces, made to happen on demand."""

    def __init__(self, contract: Contract, rival: Contract, races: int) -> None:
        super().__init__(contract._network, contract.chaincode_name, contract.contract_name)
        self.rival = rival
        self.races = races
        self.attempts = 0

    def submit_transaction(
        self,
        name: str,
        *args: Any,
        transient: Mapping[str, str | bytes] | None = None,
        endorsing_organizations: Any = None,
        commit_timeout: float | None = None,
    ) -> bytes:
        self.attempts += 1
        transaction = self.new_proposal(name, *args).endorse()
        if self.races > 0:
            self.races -= 1
            self.rival.submit_transaction(name, *args)
        return transaction.submit().wait(commit_timeout)


def test_retry_helper_reruns_a_conflicted_transaction_until_it_commits(
    gateway: Gateway, client_profile: Path
) -> None:
    key = unique("client-retry")
    with connect_org(client_profile, "HKBankMSP") as rival_gateway:
        contract = gateway.get_network("tokens").get_contract(CHAINCODE)
        rival = rival_gateway.get_network("tokens").get_contract(CHAINCODE)
        raced = RacedContract(contract, rival, races=2)

        result = submit_with_retry(raced, "BumpCounters", key, attempts=5, backoff=0.01)

    # Two rival bumps, then ours: the third attempt read 2 and wrote 3.
    assert json.loads(result) == [3]
    assert raced.attempts == 3
    assert counter(contract, key) == 3


def test_retry_helper_gives_up_on_a_chaincode_error(gateway: Gateway) -> None:
    contract = gateway.get_network("tokens").get_contract(CHAINCODE)
    with pytest.raises(GatewayError) as caught:
        submit_with_retry(contract, "Fail", 409, "[INSUFFICIENT_FUNDS] balance too low", attempts=5)
    assert caught.value.reason == "INSUFFICIENT_FUNDS"


def evaluate_when_back(contract: Contract) -> bytes:
    deadline = time.monotonic() + 60
    while True:
        try:
            return contract.evaluate_transaction("Add", 2, 2)
        except GatewayError as error:
            if error.grpc_code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.skipif(
    os.environ.get("DT_CLIENT_PROFILE") is not None and os.environ.get("DT_TEST_STATE_DIR") is None,
    reason="stopping a peer needs the network tool's state dir (DT_TEST_STATE_DIR) of that network",
)
def test_stopped_peer_gives_clear_error_and_gateway_recovers(client_profile: Path) -> None:
    from tests.integration.conftest import network_cli

    with connect_org(client_profile, "SGBankMSP", deadlines=None) as gateway:
        contract = gateway.get_network("tokens").get_contract(CHAINCODE)
        assert contract.evaluate_transaction("Add", 1, 2) == b"3"
        network_cli("kill-node", "peer.SGBankMSP")
        try:
            with pytest.raises(GatewayError) as caught:
                contract.evaluate_transaction("Add", 1, 2)
        finally:
            network_cli("start-node", "peer.SGBankMSP")
        # The same gateway (same channel) re-dials the peer once it is back (reconnect backoff <= 2 s).
        assert evaluate_when_back(contract) == b"4"
    assert caught.value.grpc_code == grpc.StatusCode.UNAVAILABLE
    assert gateway.endpoint in str(caught.value)
