"""Client cost and submit-to-commit latency of the Python Fabric client.

Prints:
- client CPU per transaction for the client-side work alone (build the proposal, sign it, parse the
  endorsed envelope, sign it, build and sign the commit-status request; no network), measured offline;
- client CPU per submitted transaction on the real network (process CPU time, all threads, including
  gRPC and TLS), over sequential submits;
- the median (and p90) submit-to-commit latency at low load (one transaction in flight), next to the
  orderer's batch timeout, which bounds how long a lone transaction waits to be cut into a block.

Usage (network up, for example ``python -m network --base-port 23000 --state-dir .state/client up``):
    .venv/bin/python bench/client_latency.py --profile .state/client/profile.json [--count 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fabric_client import Gateway  # noqa: E402
from fabric_client.commit import build_commit_status_request  # noqa: E402
from fabric_client.profile import connect_org  # noqa: E402
from fabric_client.transaction import Transaction  # noqa: E402


def fake_endorsement(proposal_bytes: bytes, result: bytes) -> Any:
    """An envelope shaped like the one the peer returns from Endorse, to time the client's parsing."""
    proposal = proposal_pb2.Proposal.FromString(proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    action = proposal_pb2.ChaincodeAction(response=proposal_response_pb2.Response(status=200, payload=result))
    response_payload = proposal_response_pb2.ProposalResponsePayload(extension=action.SerializeToString())
    endorsed = transaction_pb2.ChaincodeEndorsedAction(proposal_response_payload=response_payload.SerializeToString())
    for _ in range(2):  # two endorsements, as a two-org policy would give
        endorsed.endorsements.add(endorser=b"x" * 800, signature=b"s" * 72)
    action_payload = transaction_pb2.ChaincodeActionPayload(action=endorsed)
    transaction = transaction_pb2.Transaction(
        actions=[transaction_pb2.TransactionAction(payload=action_payload.SerializeToString())]
    )
    payload = common_pb2.Payload(header=header, data=transaction.SerializeToString())
    return common_pb2.Envelope(payload=payload.SerializeToString())


def offline_cpu_per_transaction(gateway: Gateway, chaincode: str, rounds: int) -> float:
    contract = gateway.get_network("tokens").get_contract(chaincode)
    envelope = fake_endorsement(contract.new_proposal("PutState", "k", "v").signed_proposal.proposal_bytes, b"")
    start = time.process_time()
    for i in range(rounds):
        proposal = contract.new_proposal("PutState", f"bench-{i}", "value")
        proposal.set_signature(gateway.sign(proposal.digest(), "proposal"))
        request = gateway_pb2.EndorseRequest(
            transaction_id=proposal.transaction_id,
            channel_id="tokens",
            proposed_transaction=proposal.signed_proposal,
        )
        request.SerializeToString()
        prepared = gateway_pb2.PreparedTransaction(transaction_id=proposal.transaction_id, envelope=envelope)
        transaction = Transaction(gateway, prepared)
        transaction.set_signature(gateway.sign(transaction.digest(), "transaction"))
        gateway_pb2.SubmitRequest(
            transaction_id=transaction.transaction_id,
            channel_id="tokens",
            prepared_transaction=transaction.envelope,
        ).SerializeToString()
        commit = build_commit_status_request(
            transaction_id=proposal.transaction_id, channel_name="tokens", creator=gateway.identity.creator()
        )
        commit.signature = gateway.sign(gateway.hash(commit.request), "commit")
        commit.SerializeToString()
    return (time.process_time() - start) / rounds


def batch_timeout() -> str:
    topology = yaml.safe_load((ROOT / "network" / "network.yaml").read_text())
    return str(topology.get("orderer", {}).get("batch_timeout", "unknown"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=ROOT / ".state" / "client" / "profile.json")
    parser.add_argument("--org", default="USBankMSP")
    parser.add_argument("--chaincode", default="conformance", help="needs a PutState(key, value) transaction")
    parser.add_argument("--count", type=int, default=100, help="sequential submits to time")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    with connect_org(args.profile, args.org) as gateway:
        offline = offline_cpu_per_transaction(gateway, args.chaincode, 500)
        contract = gateway.get_network("tokens").get_contract(args.chaincode)
        run = uuid.uuid4().hex[:8]
        for i in range(args.warmup):
            contract.submit_transaction("PutState", f"bench-warm-{run}-{i}", "v")
        latencies: list[float] = []
        cpu_start = time.process_time()
        for i in range(args.count):
            start = time.perf_counter()
            contract.submit_transaction("PutState", f"bench-{run}-{i}", "v")
            latencies.append(time.perf_counter() - start)
        cpu_per_tx = (time.process_time() - cpu_start) / args.count

    latencies.sort()
    p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
    print(f"client CPU per transaction, client-side work only (3 signatures + protobuf): {offline * 1e3:.2f} ms")
    print(f"client CPU per submitted transaction on the network (incl. gRPC/TLS):     {cpu_per_tx * 1e3:.2f} ms")
    median = statistics.median(latencies)
    print(
        f"submit-to-commit latency, 1 in flight, n={args.count}: median {median * 1e3:.0f} ms,"
        f" p90 {p90 * 1e3:.0f} ms, min {latencies[0] * 1e3:.0f} ms, max {latencies[-1] * 1e3:.0f} ms"
    )
    print(f"orderer batch timeout (network/network.yaml): {batch_timeout()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
