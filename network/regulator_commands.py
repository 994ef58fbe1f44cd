"""``python -m network regulator suspend-bank|reinstate-bank|banks``: the regulator's decisions.

Each command acts as the regulator org's admin through the regulator's own peer, as
``deploy.initialise`` does for the reference data, so a regulator suspends or reinstates a
bank without writing chaincode calls by hand. The contract decides: these commands only
submit and report, and a refusal (unknown bank, already suspended, ...) is printed with the
contract's code and message.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from network.consortium import Consortium

CHAINCODE = "deposit_token"

# The peer CLI reports a chaincode refusal as ``... status:409 message:"[code] text"`` (quotes escaped).
_REFUSAL = re.compile(r'message:"(?P<message>\[[a-z_]+\](?:[^"\\]|\\.)*)"')


class Refused(Exception):
    """The contract refused the regulator's request; the message starts with its code."""


def add_regulator_parser(sub: Any) -> None:
    """The ``regulator`` subcommand and its actions, on the network tool's subparsers."""
    regulator = sub.add_parser("regulator", help="the regulator's decisions: suspend or reinstate a bank; list banks")
    actions = regulator.add_subparsers(dest="regulator_action", required=True)
    suspend = actions.add_parser(
        "suspend-bank",
        help="refuse new payments to and from a bank, and its issues and transfers, until it is reinstated",
    )
    suspend.add_argument("--bank", required=True, help="the bank's MSP id, e.g. HKBankMSP")
    suspend.add_argument("--reason", required=True, help="public reason, shown in every refusal (max 200 characters)")
    reinstate = actions.add_parser("reinstate-bank", help="lift a bank's suspension")
    reinstate.add_argument("--bank", required=True, help="the bank's MSP id")
    banks = actions.add_parser("banks", help="every bank with its status")
    banks.add_argument("--json", action="store_true")


def run_regulator_command(net: Consortium, args: argparse.Namespace) -> int:
    from network.consortium import NetworkError

    if not net.running_nodes():
        raise NetworkError(f"no network is running in {net.state_dir}: run 'up' first")
    try:
        if args.regulator_action == "suspend-bank":
            submit(net, "SuspendBank", [args.bank, args.reason])
            print(describe(bank_record(net, args.bank)))
        elif args.regulator_action == "reinstate-bank":
            submit(net, "ReinstateBank", [args.bank])
            print(describe(bank_record(net, args.bank)))
        else:
            banks = reference_data(net)["banks"]
            if args.json:
                print(json.dumps(banks, indent=2))
            else:
                for bank in banks:
                    print(describe(bank))
    except Refused as refusal:
        print(f"refused: {refusal}")
        return 1
    return 0


def submit(net: Consortium, function: str, args: list[str]) -> None:
    """Submit as the regulator's admin and wait for the commit; a contract refusal raises ``Refused``."""
    from network.deploy import invoke
    from network.material import MaterialError

    try:
        out = invoke(net, CHAINCODE, net.topology.regulator, function, args)
    except MaterialError as error:
        refusal = _REFUSAL.search(str(error))
        if refusal is None:
            raise
        raise Refused(refusal.group("message").replace('\\"', '"')) from None
    if "committed with status (VALID)" not in out:
        raise Refused(f"{function} was not committed as valid: {out.strip()[-500:]}")


def reference_data(net: Consortium) -> dict[str, Any]:
    """GetReferenceData, evaluated on the regulator's own peer."""
    from network.nodes import admin_env, fabric_bin
    from network.org import run_in

    regulator = net.topology.regulator
    out = run_in(
        regulator,
        [str(fabric_bin("peer")), "chaincode", "query", "-C", net.topology.channel, "-n", CHAINCODE,
         "-c", json.dumps({"Args": ["GetReferenceData"]})],
        "query GetReferenceData", env=admin_env(net.home(regulator), net.ports), timeout=60,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return data


def bank_record(net: Consortium, msp_id: str) -> dict[str, Any]:
    record: dict[str, Any] = next(bank for bank in reference_data(net)["banks"] if bank["msp_id"] == msp_id)
    return record


def describe(bank: dict[str, Any]) -> str:
    """One line per bank: MSP id, status, since when and why."""
    status = bank.get("status") or "active"
    line = f"{bank['msp_id']:<16} {status:<10}"
    if bank.get("status_since"):
        line += f" since {bank['status_since']}"
    if status == "suspended":
        line += f"  reason: {bank.get('status_reason')}"
    return line
