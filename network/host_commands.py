"""``python -m network org ...`` and ``python -m network consortium ...``: the per-host steps.

Each bank (and the regulator) runs ``org`` commands on its own machine, with its own folder
(``--home``) and the consortium's public folder (``--consortium``: the gathered org definitions
and the genesis block, exchanged by any means the banks agree on). ``consortium genesis``
needs only the definitions, so any org (or a neutral party) can run it, and every org can
check the block before it joins. Nothing here reads another org's folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from network.consortium import Consortium, NetworkError
from network.topology import Org, Topology


def _org(topology: Topology, name: str) -> Org:
    for org in topology.peer_orgs:
        if name in (org.name, org.msp_id):
            return org
    known = ", ".join(o.name for o in topology.peer_orgs)
    raise NetworkError(f"--org {name!r} is not an org of the topology (known: {known})")


def _consortium(topology: Topology, base_port: int, org: Org, home: Path, public: Path | None) -> Consortium:
    public = (public or home / "consortium").resolve()
    return Consortium(
        topology, state_dir=home.resolve(), base_port=base_port, org_homes={org.msp_id: home},
        consortium_path=public,
    )  # fmt: skip


def run_org_command(topology: Topology, base_port: int, args: argparse.Namespace) -> int:
    org = _org(topology, args.org)
    net = _consortium(topology, base_port, org, args.home, args.consortium)
    home = net.home(org)
    if args.action == "init":
        t = net.step(f"{org.name}: creating its CAs and identities in {home.root}")
        net.init_org(org)
        net.done(t)
        _export(net, org, args.out)
        return 0
    if args.action == "export":
        _export(net, org, args.out)
        return 0
    if args.action == "start":
        if not net.genesis_block.exists():
            raise NetworkError(
                f"{net.genesis_block} does not exist: gather the org definitions and run "
                f"'python -m network consortium genesis --consortium {net.consortium_dir}' first"
            )
        located = net.save_node_specs(org)
        net.start_nodes(located, fresh=False)
        if org.orderer_count:
            t = net.step(f"{org.name}: joining its ordering nodes to the channel")
            net.join_orderers(org)
            net.done(t)
        t = net.step(f"{org.name}: joining its peer to the channel")
        net.join_peer(org)
        net.done(t)
        return 0
    if args.action == "deploy":
        from network.deploy import approve_for_org

        for cc in topology.chaincodes_for(args.with_test_chaincodes):
            approve_for_org(net, cc, org)
        return 0
    if args.action == "gateway":
        from network.gateways import start_gateways

        start_gateways(net, [org])
        return 0
    if args.action == "stop":
        print(f"{org.name}: stopped {len(net.stop([org]))} processes")
        return 0
    if args.action == "status":
        info = net.status()
        print(json.dumps([n for n in info["nodes"] if n["org"] == org.name], indent=2))
        return 0 if all(n["healthy"] for n in info["nodes"] if n["org"] == org.name) else 1
    raise NetworkError(f"unknown action {args.action}")


def _export(net: Consortium, org: Org, out: Path | None) -> None:
    from network.definition import export_definition

    export_definition(net.home(org), net.topology, net.ports)
    source = net.home(org).definition_file
    if out is None:
        print(source.read_text())
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out)
        print(f"{org.name}: org definition written to {out}")


def run_consortium_command(topology: Topology, base_port: int, args: argparse.Namespace) -> int:
    public = args.consortium.resolve()
    if args.action == "genesis":
        net = Consortium(topology, state_dir=public, base_port=base_port, consortium_path=public)
        t = net.step(f"Genesis block of '{topology.channel}' from the definitions in {net.definitions_dir}")
        block = net.create_genesis_block()
        net.done(t)
        print(f"genesis block: {block}")
        return 0
    if args.action == "commit":
        if not args.org or not args.home:
            raise NetworkError("consortium commit needs --org and --home (the committing org's folder)")
        org = _org(topology, args.org)
        net = _consortium(topology, base_port, org, args.home, public)
        from network.deploy import commit_for_consortium

        for cc in topology.chaincodes_for(args.with_test_chaincodes):
            commit_for_consortium(net, cc, org)
        return 0
    raise NetworkError(f"unknown action {args.action}")
