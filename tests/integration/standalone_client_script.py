"""Run by ``test_client_package_network.py`` with the Python of an empty virtual environment into which
only the ``fabric-gateway-client`` wheel was installed: it imports nothing of the deposit-token project.

Usage: python standalone_client_script.py <profile.json> <work-dir>

Connects as USBank's client user with mutual TLS, then: an evaluate; a submit whose private value travels
only in the transient map; a chaincode-event listener that handles one event, checkpoints it to a file,
stops, and a second listener resumed from that file that gets the remaining events and none again.
Prints a JSON summary on success; any failed check exits non-zero.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from fabric_client import ChaincodeEvent, ECDSASigner, FileCheckpointer, Gateway, Identity

CHAINCODE = "conformance"
MSP_ID = "USBankMSP"
STREAM_LIMIT = 120.0


def connect(profile: dict, msp_id: str) -> Gateway:  # type: ignore[type-arg]
    org = profile["orgs"][msp_id]
    client, peer = org["client"], org["peer"]
    return Gateway.connect(
        identity=Identity.from_cert_file(msp_id, client["cert"]),
        signer=ECDSASigner.from_key_file(client["key"]),
        endpoint=peer["address"],
        tls_root_cert=Path(peer["tls_ca"]).read_bytes(),
        host_override=peer["host_override"],
        client_cert=Path(client["tls_cert"]).read_bytes(),
        client_key=Path(client["tls_key"]).read_bytes(),
        keepalive_time=120.0,
    )


def events_named(gateway: Gateway, channel: str, name: str, count: int, **start: object) -> list[ChaincodeEvent]:
    found: list[ChaincodeEvent] = []
    network = gateway.get_network(channel)
    checkpointer = start.pop("checkpointer")
    assert isinstance(checkpointer, FileCheckpointer)
    with network.get_chaincode_events(
        CHAINCODE, checkpointer=checkpointer, timeout=STREAM_LIMIT, **start  # type: ignore[arg-type]
    ) as events:
        for event in events:
            if event.event_name == name:
                found.append(event)
                checkpointer.checkpoint_chaincode_event(event)
                if len(found) == count:
                    break
    return found


def main(profile_path: str, work_dir: str) -> None:
    profile = json.loads(Path(profile_path).read_text())
    channel = profile["channel"]
    summary: dict[str, object] = {}
    with connect(profile, MSP_ID) as gateway:
        contract = gateway.get_network(channel).get_contract(CHAINCODE)

        # evaluate: runs on one peer, changes nothing
        assert contract.evaluate_transaction("Add", 40, 2) == b"42"
        summary["evaluate"] = "Add(40, 2) = 42"

        # submit with transient data: the value never appears in the arguments or the block
        key = f"standalone-{uuid.uuid4().hex[:12]}"
        secret = f"secret-{uuid.uuid4().hex[:8]}"
        collection = f"_implicit_org_{MSP_ID}"  # the org's own implicit collection
        result = contract.submit_transaction(
            "PutPrivate", collection, key, transient={"value": secret}, endorsing_organizations=[MSP_ID]
        )
        assert result == b""
        assert contract.evaluate_transaction("GetPrivate", collection, key).decode() == secret
        summary["submit_transient"] = key

        # chaincode events resumed from a checkpoint file
        name = f"standalone-evt-{uuid.uuid4().hex[:12]}"
        submitted = [contract.submit_async("EmitEvent", name, f"p{i}") for i in range(3)]
        statuses = [transaction.status() for transaction in submitted]
        assert all(status.successful for status in statuses), statuses
        emitted = sorted(statuses, key=lambda status: status.block_number)
        first_block = emitted[0].block_number

        checkpoint_file = Path(work_dir) / "listener.checkpoint.json"
        first_life = events_named(
            gateway, channel, name, 1, checkpointer=FileCheckpointer(checkpoint_file), start_block=first_block
        )
        resumed = FileCheckpointer(checkpoint_file)
        assert resumed.block_number == first_life[0].block_number
        assert resumed.transaction_id == first_life[0].transaction_id
        second_life = events_named(gateway, channel, name, 2, checkpointer=resumed)

        handled = [event.transaction_id for event in first_life + second_life]
        assert len(set(handled)) == 3, handled
        assert set(handled) == {transaction.transaction_id for transaction in submitted}
        blocks = [event.block_number for event in first_life + second_life]
        assert blocks == sorted(blocks), blocks
        summary["events"] = {"first_life": len(first_life), "second_life": len(second_life)}

    import fabric_client

    summary["fabric_client"] = str(Path(fabric_client.__file__).parent)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
