"""A new version of a chaincode, approved and committed while payments flow.

Each org's chaincode server has two slots (two ports, network/ports.py). The new version is
packaged for the slot that is free, installed, and its server started there while the current
server keeps serving the committed definition. Every org then approves the next sequence with
its new package id and one commits it; from that block on, the peers call the new servers. The
old servers stop only after the new ones answer. Transactions endorsed on the old version and
ordered after the commit fail validation (they read the old definition) and are resubmitted
by the gateways like any read conflict; nothing is lost.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import yaml

from network import processes
from network.consortium import Consortium, NetworkError
from network.deploy import (
    approve,
    chaincode_definition,
    chaincode_server_spec,
    commit,
    committed_definition,
    contract_present,
    current_slot,
    install,
    wait_chaincode_answers,
)
from network.membership import live_topology_file, remember_topology, write_live_topology
from network.topology import ChaincodeSpec, Org, TopologyError, load_topology, parse_topology


def upgraded_topology(net: Consortium, cc_name: str, version: str, contract: str | None) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(net.topology.source.read_text())
    entry = next((cc for cc in raw.get("chaincodes", []) if cc.get("name") == cc_name), None)
    if entry is None:
        raise NetworkError(f"the topology has no chaincode named {cc_name!r}")
    if entry.get("version") == version:
        raise NetworkError(f"chaincode {cc_name!r} is already at version {version}")
    entry["version"] = version
    if contract:
        entry["contract"] = contract
    try:
        parse_topology(raw, source=net.topology.source)
    except TopologyError as exc:
        raise NetworkError(f"the upgrade does not fit the topology: {exc}") from exc
    return raw


def upgrade_chaincode(net: Consortium, cc_name: str, version: str, contract: str | None = None) -> float:
    """Move ``cc_name`` to ``version`` (and ``contract``, if given) on the running network; returns seconds."""
    begin = time.monotonic()
    current = committed_definition(net, cc_name)
    if current is None:
        raise NetworkError(f"chaincode {cc_name!r} is not deployed on this network: nothing to upgrade")
    raw = upgraded_topology(net, cc_name, version, contract)
    new_cc = next(cc for cc in parse_topology(raw, source=net.topology.source).chaincodes if cc.name == cc_name)
    if not contract_present(new_cc):
        raise NetworkError(f"the contract {new_cc.contract} cannot be imported from this checkout")
    write_live_topology(net.state_dir, raw)
    remember_topology(net.state_dir, live_topology_file(net.state_dir))
    net = dataclasses.replace(net, topology=load_topology(live_topology_file(net.state_dir)))
    orgs = net.topology.peer_orgs
    slots = {org.msp_id: 1 - current_slot(net, cc_name, org) for org in orgs}

    t = net.step(f"Each org packages '{cc_name}' v{version} for its free server slot and installs it")
    installed = net.for_each_org(lambda org: install(net, new_cc, org, slots[org.msp_id]))
    package_ids = dict(zip((o.msp_id for o in orgs), installed, strict=True))
    net.done(t)

    t = net.step(f"Each org starts its v{version} server beside the one still serving")
    net.for_each_org(lambda org: _start_beside(net, new_cc, org, package_ids[org.msp_id], slots[org.msp_id]))
    net.done(t)

    sequence = int(current["sequence"]) + 1
    definition = chaincode_definition(net, new_cc)
    args = definition.cli_args(net.topology.channel, new_cc, sequence)
    t = net.step(f"Each org approves '{cc_name}' v{version} sequence {sequence}; then one commits it")
    net.for_each_org(lambda org: approve(net, org, args, package_ids[org.msp_id]))
    commit(net, orgs[0], args)
    for org in orgs:
        (net.home(org).chaincode_dir / cc_name / "slot").write_text(str(slots[org.msp_id]))
    stamp = {"fingerprint": definition.fingerprint, "sequence": sequence, "package_ids": package_ids}
    (net.consortium_dir / "chaincode" / cc_name / "committed.json").write_text(json.dumps(stamp, indent=2))
    net.done(t)

    t = net.step(f"Waiting until v{version} answers on every peer; then the old servers stop")
    net.for_each_org(lambda org: wait_chaincode_answers(net, new_cc, org))
    for org in orgs:
        home, retiring = net.home(org), _retiring(cc_name, org)
        processes.stop(home.root, retiring)
        processes.forget(home.root, retiring)
    net.done(t)
    elapsed = time.monotonic() - begin
    net.progress(f"'{cc_name}' is at v{version} (sequence {sequence}) on every peer after {elapsed:.1f}s")
    return elapsed


def _retiring(cc_name: str, org: Org) -> str:
    return f"cc.{cc_name}.{org.msp_id}.retiring"


def _start_beside(net: Consortium, cc: ChaincodeSpec, org: Org, package_id: str, slot: int) -> None:
    home = net.home(org)
    name = f"cc.{cc.name}.{org.msp_id}"
    # the running server keeps serving under another name; the new one takes the usual name
    processes.rename(home.root, name, _retiring(cc.name, org))
    spec = chaincode_server_spec(net, cc, org, package_id, slot)
    processes.save_specs(home.root, [spec])
    processes.start(home.root, spec)
    processes.wait_healthy(home.root, [spec], timeout=30)
