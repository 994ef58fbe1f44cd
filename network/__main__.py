"""``python -m network up|deploy|down|status|restart-node|kill-node|profile``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from network.regulator_commands import add_regulator_parser, run_regulator_command
from network.topology import DEFAULT_TOPOLOGY, Org, TopologyError, load_topology

# the steps of add-bank, in order (network/membership.py)
STEPS = ("prepare", "propose", "sign", "submit", "join", "chaincode", "register", "gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m network",
        description="Start, inspect and stop the multi-bank Fabric network on this machine.",
    )
    parser.add_argument(
        "--topology", type=Path, default=None,
        help=f"topology file (default: the running consortium's, else {DEFAULT_TOPOLOGY})",
    )  # fmt: skip
    parser.add_argument(
        "--base-port", type=int, default=None, help="first port of the port plan (default: from topology)"
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="where data, logs and pid files go")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build (or reuse) the network, deploy the chaincode, start the gateways")
    up.add_argument("--with-test-chaincodes", action="store_true", help="also deploy chaincodes marked test_only")
    up.add_argument("--no-deploy", action="store_true", help="only the Fabric nodes and the channel")
    up.add_argument("--no-gateways", action="store_true", help="do not start the REST gateways")
    dep = sub.add_parser("deploy", help="(re)deploy the chaincodes on a running network")
    dep.add_argument("--with-test-chaincodes", action="store_true")
    down = sub.add_parser("down", help="stop every process of the network and delete its data")
    down.add_argument("--keep-data", action="store_true", help="keep ledgers and crypto so 'up' can restart it")
    status = sub.add_parser("status", help="show every node, its pid, health and memory")
    status.add_argument("--json", action="store_true")
    kill = sub.add_parser("kill-node", help="stop one node (SIGKILL by default)")
    kill.add_argument("name")
    kill.add_argument("--term", action="store_true", help="SIGTERM instead of SIGKILL")
    restart = sub.add_parser("start-node", help="start one stopped node and wait for it to be healthy")
    restart.add_argument("name")
    sub.add_parser("profile", help="print the path of the network profile")
    add = sub.add_parser(
        "add-bank",
        help="add a bank to the running channel: its CAs, the config update signed by each member, "
        "its nodes, the next chaincode definition, the reference data, its gateway",
    )  # fmt: skip
    add.add_argument("--name", required=True, help="the bank's name, e.g. EUBank")
    add.add_argument("--msp-id", required=True, help="its MSP id, e.g. EUBankMSP")
    add.add_argument("--jurisdiction", required=True, help="2 to 4 capital letters, e.g. EU")
    add.add_argument("--currencies", required=True, help="the currencies it issues, comma-separated, e.g. EUR")
    add.add_argument("--new-currency", action="append", default=[], metavar="CODE=EXPONENT",
                     help="a currency the consortium does not know yet, e.g. CHF=2 (repeatable)")  # fmt: skip
    add.add_argument("--host", help="the address its nodes bind to (default: the next free 127.0.0.x)")
    add.add_argument("--orderers", type=int, default=0, help="ordering nodes it runs (default: 0)")
    add.add_argument("--resume", action="store_true", help="finish a join that was interrupted")
    add.add_argument(
        "--step", choices=STEPS,
        help="run one step only, as the party that runs it would (default: every step in order); "
        "sign and submit take --org",
    )  # fmt: skip
    add.add_argument("--org", help="--step sign: the member that signs (default: every member); "
                     "--step submit: the member that submits (default: the regulator)")  # fmt: skip
    add.add_argument(
        "--from-snapshot", action="store_true",
        help="join the new peer from a ledger snapshot of a member's peer, not from the genesis block",
    )  # fmt: skip
    for name, what in (("rotate-client", "the org's gateway gets a fresh certificate; the old one is revoked "
                                          "and the CRL published in the org's MSP (a config update it signs)"),
                       ("rotate-peer-tls", "a new TLS certificate for the org's peer, which restarts on it")):
        rotate = sub.add_parser(name, help=what)
        rotate.add_argument("--org", required=True, help="the org's name or MSP id, e.g. HKBank")
    upgrade = sub.add_parser(
        "upgrade-chaincode",
        help="a new version of a chaincode, approved and committed by every org while the old one keeps serving",
    )  # fmt: skip
    upgrade.add_argument("name", help="the chaincode, e.g. deposit_token")
    upgrade.add_argument("--version", required=True, help="its new version, e.g. 1.1")
    upgrade.add_argument("--contract", help="module:Class of the new contract (default: the current one)")

    # What one org runs on its own host, with only its own folder and the public consortium folder.
    org_cmd = sub.add_parser("org", help="one organisation's own steps, on its own host (see network/README.md)")
    org_cmd.add_argument(
        "action", choices=("init", "export", "start", "deploy", "stop", "status", "gateway"),
        help="init: CAs and identities, then export; export: write the org definition; start: nodes and "
        "channel join; deploy: chaincode install, server and approval (once the ordering service has a "
        "quorum); stop; status; gateway: start the bank's REST gateway",
    )  # fmt: skip
    org_cmd.add_argument("--org", required=True, help="the org's name in the topology, e.g. HKBank")
    org_cmd.add_argument("--home", type=Path, required=True, help="the org's own folder")
    org_cmd.add_argument("--consortium", type=Path, help="the public folder: definitions/ and the genesis block")
    org_cmd.add_argument("--out", type=Path, help="export: where to write the definition (default: print it)")
    org_cmd.add_argument("--with-test-chaincodes", action="store_true")
    cons = sub.add_parser("consortium", help="steps on public material only: the genesis block, the commit")
    cons.add_argument("action", choices=("genesis", "commit"),
                      help="genesis: the channel's genesis block from definitions/; commit: commit the chaincode "
                      "definitions (run by one org, with --org and --home)")  # fmt: skip
    cons.add_argument("--consortium", type=Path, required=True)
    cons.add_argument("--org", help="commit: the committing org")
    cons.add_argument("--home", type=Path, help="commit: the committing org's folder")
    cons.add_argument("--with-test-chaincodes", action="store_true")
    add_regulator_parser(sub)
    args = parser.parse_args(argv)

    from network.channel_config import ConfigUpdateError
    from network.consortium import Consortium, NetworkError, default_state_dir
    from network.material import MaterialError
    from network.membership import running_topology
    from network.processes import NodeError

    topology_file = args.topology or DEFAULT_TOPOLOGY
    try:
        topology = load_topology(topology_file)
        base_port = args.base_port if args.base_port is not None else topology.base_port
        state_dir = args.state_dir or default_state_dir(base_port)
        if args.topology is None and running_topology(state_dir, topology_file) != topology_file:
            # banks have joined this consortium since it started: its live topology lists them
            topology_file = running_topology(state_dir, topology_file)
            topology = load_topology(topology_file)
    except TopologyError as exc:
        print(f"error: {topology_file}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command in ("org", "consortium"):
            from network.host_commands import run_consortium_command, run_org_command

            if args.command == "org":
                return run_org_command(topology, base_port, args)
            return run_consortium_command(topology, base_port, args)
        net = Consortium(topology, state_dir, base_port)
        if args.command == "up":
            net.up(
                with_test_chaincodes=args.with_test_chaincodes,
                deploy=not args.no_deploy,
                gateways=not args.no_gateways,
            )
        elif args.command == "deploy":
            from network.deploy import deploy_all

            if not net.running_nodes():
                raise NetworkError(f"no network is running in {net.state_dir}: run 'up' first")
            deploy_all(net, with_test_chaincodes=args.with_test_chaincodes)
            net.write_profile()
        elif args.command == "down":
            stopped = net.down(keep_data=args.keep_data)
            print(f"Stopped {len(stopped)} processes" + ("" if args.keep_data else f"; removed {net.state_dir}"))
        elif args.command == "status":
            info = net.status()
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                _print_status(info)
            if info["nodes"] and not all(n["healthy"] for n in info["nodes"]):
                return 1
        elif args.command == "kill-node":
            import signal

            net.kill_node(args.name, sig=signal.SIGTERM if args.term else signal.SIGKILL)
            print(f"{args.name} stopped")
        elif args.command == "start-node":
            net.start_node(args.name)
            print(f"{args.name} started and healthy")
        elif args.command == "profile":
            print(net.state_dir / "profile.json")
        elif args.command == "add-bank":
            return _add_bank(net, args)
        elif args.command in ("rotate-client", "rotate-peer-tls"):
            from network.credentials import rotate_client, rotate_peer_tls

            org = _org_named(net, args.org)
            if args.command == "rotate-client":
                rotation = rotate_client(net, org)
                print(f"{org.name}: client certificate {rotation.old_serial} revoked; the gateway uses "
                      f"{rotation.new_serial} (update: {rotation.update_dir})")  # fmt: skip
            else:
                print(f"{org.name}: peer TLS certificate is now {rotate_peer_tls(net, org)}")
        elif args.command == "upgrade-chaincode":
            from network.upgrade import upgrade_chaincode

            if not net.running_nodes():
                raise NetworkError(f"no network is running in {net.state_dir}: run 'up' first")
            upgrade_chaincode(net, args.name, args.version, args.contract)
        elif args.command == "regulator":
            return run_regulator_command(net, args)
    except (NetworkError, MaterialError, NodeError, ConfigUpdateError, FileNotFoundError, ValueError,
            KeyError) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run 'python -m network down' to clean up", file=sys.stderr)
        return 130
    return 0


def _add_bank(net: object, args: argparse.Namespace) -> int:
    from network.consortium import Consortium, NetworkError
    from network.membership import BankJoin, NewBank

    assert isinstance(net, Consortium)
    if not net.running_nodes():
        raise NetworkError(f"no network is running in {net.state_dir}: run 'up' first")
    new_currencies: list[tuple[str, int]] = []
    for item in args.new_currency:
        code, _, exponent = item.partition("=")
        if not exponent.isdigit():
            raise NetworkError(f"--new-currency {item!r}: expected CODE=EXPONENT, e.g. CHF=2")
        new_currencies.append((code, int(exponent)))
    used = {org.host for org in net.topology.peer_orgs}
    host = args.host or next(f"127.0.0.{i}" for i in range(2, 255) if f"127.0.0.{i}" not in used)
    bank = NewBank(
        name=args.name, msp_id=args.msp_id, jurisdiction=args.jurisdiction,
        currencies=tuple(c.strip() for c in args.currencies.split(",") if c.strip()),
        host=host, orderers=args.orderers, new_currencies=tuple(new_currencies),
    )  # fmt: skip
    if args.step is None:
        BankJoin(net.topology, net.state_dir, net.base_port, bank, resume=args.resume).run(args.from_snapshot)
        return 0
    # one step: the first one adds the bank to the live topology, every later one finds it there
    join = BankJoin(net.topology, net.state_dir, net.base_port, bank, resume=args.step != "prepare" or args.resume)
    org = _org_named(join.net, args.org) if args.org else None
    if args.step == "prepare":
        join.prepare()
    elif args.step == "propose":
        join.propose()
    elif args.step == "sign":
        join.sign([org] if org else None)
    elif args.step == "submit":
        join.submit(org)
    elif args.step == "join":
        join.join(args.from_snapshot)
    elif args.step == "chaincode":
        join.chaincode()
    elif args.step == "register":
        join.register()
    elif args.step == "gateway":
        join.gateway()
    return 0


def _org_named(net: object, name: str) -> Org:
    from network.consortium import Consortium, NetworkError

    assert isinstance(net, Consortium)
    for org in net.topology.peer_orgs:
        if name in (org.name, org.msp_id):
            return org
    raise NetworkError(f"no org named {name!r} (known: {', '.join(o.name for o in net.topology.peer_orgs)})")


def _print_status(info: dict[str, object]) -> None:
    nodes = info["nodes"]
    assert isinstance(nodes, list)
    if not nodes:
        print(f"No network in {info['state_dir']}.")
        return
    print(f"State: {info['state_dir']}   base port {info['base_port']}   channel {info['channel']}")
    print(f"Consensus: {info.get('consensus')}   leader: {info['raft_leader'] or 'none'}")
    print(f"{'node':<34} {'kind':<10} {'pid':>7} {'state':<9} {'RSS MiB':>8}  host:ports")
    total = 0.0
    for n in nodes:
        state = "healthy" if n["healthy"] else ("running" if n["running"] else "stopped")
        total += n["rss_mib"]
        ports = ",".join(str(p) for p in n["ports"])
        print(f"{n['name']:<34} {n['kind']:<10} {n['pid'] or '-':>7} {state:<9} {n['rss_mib']:>8}  {n['host']}:{ports}")
    print(f"{'total resident memory':<63} {total:>8.1f}")


if __name__ == "__main__":
    sys.exit(main())
