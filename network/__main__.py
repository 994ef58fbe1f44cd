"""``python -m network up|deploy|down|status|restart-node|kill-node|profile``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from network.regulator_commands import add_regulator_parser, run_regulator_command
from network.topology import DEFAULT_TOPOLOGY, TopologyError, load_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m network",
        description="Start, inspect and stop the multi-bank Fabric network on this machine.",
    )
    parser.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY, help="topology file (default: %(default)s)")
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

    try:
        topology = load_topology(args.topology)
    except TopologyError as exc:
        print(f"error: {args.topology}: {exc}", file=sys.stderr)
        return 2

    from network.consortium import Consortium, NetworkError, default_state_dir
    from network.material import MaterialError
    from network.processes import NodeError

    base_port = args.base_port if args.base_port is not None else topology.base_port
    state_dir = args.state_dir or default_state_dir(base_port)
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
        elif args.command == "regulator":
            return run_regulator_command(net, args)
    except (NetworkError, MaterialError, NodeError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run 'python -m network down' to clean up", file=sys.stderr)
        return 130
    return 0


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
