"""A small fabric-sdk-py (hfc) application against the deposit-token network.

Runs only in the hfc environment (compat/hfc/venv.py builds it; docs/hfc.md explains why it is
separate). It takes the hfc connection profile the network tool writes and, as one bank:

1. queries the reference data (``GetReferenceData``) on the bank's own peer;
2. invokes ``SetPaymentTimeout`` as the regulator with the current value (public arguments only);
3. listens to the bank's peer for blocks from the current height on;
4. opens an account with the customer data in the transient map and reads it back;
5. sees the ``AccountOpened`` chaincode event of that transaction, committed as VALID;
6. is refused when it asks another bank's peer to open an account, and when it reads an
   account that does not exist.

It prints one JSON document on stdout (``"ok": true`` when every step ran); hfc's log goes to
stderr. Usage::

    .venv-hfc/bin/python compat/hfc/app.py --profile .state/demo/hfc-profile.json [--bank USBank]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import traceback
import uuid
from importlib.metadata import version
from typing import Any

from hfc.fabric import Client

CHAINCODE = "deposit_token"
USER = "User1"
# how long one step may wait for the network before the application gives up
STEP_TIMEOUT = 60.0

JSON = dict[str, Any]


class Refused(Exception):
    """The peer refused to endorse or the orderer refused the transaction: nothing was committed."""


def transient(request: JSON) -> dict[str, bytes]:
    """The contract reads private input from the transient map, under ``request``, as JSON."""
    return {"request": json.dumps(request).encode()}


class Bank:
    """One org's user and peer, from the hfc profile."""

    def __init__(self, client: Client, org: str) -> None:
        info = client.get_net_info("organizations", org)
        if info is None:
            raise SystemExit(f"no organization {org!r} in the profile")
        self.org = org
        self.msp_id: str = info["mspid"]
        self.peer_name: str = info["peers"][0]
        self.peer = client.get_peer(self.peer_name)
        self.user = client.get_user(org, USER)


def org_of(client: Client, msp_id: str) -> str:
    for name, info in client.get_net_info("organizations").items():
        if info["mspid"] == msp_id:
            return str(name)
    raise SystemExit(f"no organization with MSP id {msp_id} in the profile")


async def query(client: Client, channel: str, bank: Bank, fcn: str, request: JSON | None = None) -> JSON:
    """Evaluate on the bank's own peer; hfc raises with the peers' responses when one refuses."""
    raw = await client.chaincode_query(
        requestor=bank.user,
        channel_name=channel,
        peers=[bank.peer],
        args=[],
        cc_name=CHAINCODE,
        fcn=fcn,
        transient_map=transient(request) if request is not None else None,
    )
    result: JSON = json.loads(raw)
    return result


async def submit(
    client: Client, channel: str, bank: Bank, fcn: str, args: list[str], request: JSON | None = None, peer: Any = None
) -> tuple[str, JSON]:
    """Endorse on one peer, send to an orderer, wait for the commit; the transaction id and result.

    ``chaincode_invoke`` does not raise on a refusal: it returns the peers' (or the orderer's)
    message as if it were the result. It does not return the transaction id either; with
    ``wait_for_event`` it sets ``client.evt_tx_id`` just before waiting for the commit, which
    only an endorsed and ordered transaction reaches. So one Client runs one invoke at a time.
    """
    client.evt_tx_id = None
    result = await client.chaincode_invoke(
        requestor=bank.user,
        channel_name=channel,
        peers=[peer or bank.peer],
        args=args,
        cc_name=CHAINCODE,
        fcn=fcn,
        transient_map=transient(request) if request is not None else None,
        wait_for_event=True,
        wait_for_event_timeout=STEP_TIMEOUT,
    )
    tx_id = client.evt_tx_id
    if tx_id is None:
        raise Refused(result)
    return tx_id, json.loads(result)


def refusal_messages(error: Exception) -> list[str]:
    """hfc's query error carries the peers' ProposalResponses; their messages say why."""
    responses = error.args[0] if error.args and isinstance(error.args[0], list) else []
    return [r.response.message for r in responses if hasattr(r, "response")] or [str(error)]


class BlockListener:
    """Chaincode events of the bank's peer, from a given block on (full blocks, so with payloads)."""

    def __init__(self, client: Client, channel: str, bank: Bank, start: int) -> None:
        self.events: list[JSON] = []
        self.arrived = asyncio.Event()
        self.hub = client.get_channel(channel).newChannelEventHub(bank.peer, bank.user)
        self.hub.registerChaincodeEvent(CHAINCODE, ".*", onEvent=self._on_event)
        self.task = asyncio.ensure_future(self.hub.connect(filtered=False, start=start))

    def _on_event(self, event: JSON, block_number: int, tx_id: str, tx_status: str) -> None:
        payload = event.get("payload") or b"{}"
        self.events.append(
            {
                "name": event["event_name"],
                "tx_id": tx_id,
                "status": tx_status,
                "block": block_number,
                "payload": json.loads(payload),
            }
        )
        self.arrived.set()

    async def wait_for(self, tx_id: str) -> JSON:
        while True:
            for event in self.events:
                if event["tx_id"] == tx_id:
                    return event
            if self.task.done():
                self.task.result()  # the stream ended: raise its error
                raise RuntimeError("the event stream ended before the transaction's event")
            self.arrived.clear()
            await self.arrived.wait()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.hub.disconnect()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def run(profile: str, bank_org: str, other_org: str) -> JSON:
    # aiogrpc binds every gRPC channel to the event loop running when it is made, and hfc makes
    # them while it reads the profile: the Client must be created inside the running loop
    client = Client(net_profile=profile)
    channel = next(iter(client.get_net_info("channels")))
    client.new_channel(channel)
    bank, other = Bank(client, bank_org), Bank(client, other_org)
    report: JSON = {
        "versions": {name: version(name) for name in ("fabric-sdk-py", "protobuf", "grpcio", "aiogrpc")},
        "python": sys.version.split()[0],
        "channel": channel,
        "bank": {"org": bank.org, "msp_id": bank.msp_id, "peer": bank.peer_name},
    }

    reference = await query(client, channel, bank, "GetReferenceData")
    timeout = reference["payment_timeout_seconds"]
    report["query"] = {
        "function": "GetReferenceData",
        "banks": sorted(b["msp_id"] for b in reference["banks"]),
        "regulator": reference["regulator"],
        "payment_timeout_seconds": timeout,
    }

    # the same value again: the invoke commits and changes nothing another client relies on
    regulator = Bank(client, org_of(client, reference["regulator"]))
    tx_id, result = await asyncio.wait_for(
        submit(client, channel, regulator, "SetPaymentTimeout", [str(timeout)]), STEP_TIMEOUT
    )
    report["invoke"] = {"function": "SetPaymentTimeout", "org": regulator.org, "tx_id": tx_id, "result": result}

    info = await client.query_info(requestor=bank.user, channel_name=channel, peers=[bank.peer])
    report["height_before"] = info.height
    listener = BlockListener(client, channel, bank, start=info.height)
    try:
        account = {
            "account_id": f"hfc-{uuid.uuid4().hex[:16]}",
            "holder": "hfc example customer",
            "jurisdiction": reference_jurisdiction(reference, bank.msp_id),
            "kyc_ref": "kyc-hfc-1",
        }
        tx_id, result = await asyncio.wait_for(
            submit(client, channel, bank, "OpenAccount", [], request=account), STEP_TIMEOUT
        )
        read_back = await query(client, channel, bank, "GetAccount", {"account_id": account["account_id"]})
        report["transient_invoke"] = {
            "function": "OpenAccount",
            "tx_id": tx_id,
            "result": result,
            "sent": account,
            "read_back": read_back,
        }
        report["event"] = await asyncio.wait_for(listener.wait_for(tx_id), STEP_TIMEOUT)
    finally:
        await listener.close()

    # the contract serves a bank only on that bank's own peer
    stranger = {**account, "account_id": f"hfc-{uuid.uuid4().hex[:16]}"}
    try:
        await asyncio.wait_for(
            submit(client, channel, bank, "OpenAccount", [], request=stranger, peer=other.peer), STEP_TIMEOUT
        )
        report["refusal"] = {"error": None}
    except Refused as error:
        report["refusal"] = {"function": "OpenAccount", "peer": other.peer_name, "error": "Refused",
                             "message": str(error)}  # fmt: skip
    try:
        await query(client, channel, bank, "GetAccount", {"account_id": stranger["account_id"]})
        report["query_refusal"] = {"error": None}
    except Exception as error:  # hfc raises a bare Exception with the responses
        report["query_refusal"] = {"function": "GetAccount", "error": type(error).__name__,
                                   "messages": refusal_messages(error)}  # fmt: skip
    await client.close_grpc_channels()
    report["ok"] = True
    return report


def reference_jurisdiction(reference: JSON, msp_id: str) -> str:
    for bank in reference["banks"]:
        if bank["msp_id"] == msp_id:
            return str(bank["jurisdiction"])
    raise SystemExit(f"{msp_id} is not a registered bank")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="the hfc profile (<state>/hfc-profile.json)")
    parser.add_argument("--bank", default="USBank", help="the bank (org name) the application acts for")
    parser.add_argument("--other-bank", default="HKBank", help="another bank, whose peer refuses this bank")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # hfc.fabric.client sets its own logger to DEBUG, with a console handler, when imported
    logging.getLogger("hfc.fabric.client").setLevel(logging.WARNING)
    try:
        report = asyncio.run(run(args.profile, args.bank, args.other_bank))
    except Exception as error:
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
