"""``python -m demo``: set up (or reuse) the network, then play the trade-payment scenario."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from network.consortium import Consortium, NetworkError, default_state_dir
from network.material import MaterialError
from network.processes import NodeError
from network.topology import TopologyError, load_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--base-port", type=int, default=7000)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument(
        "--reset", action="store_true", help="take an existing network down and start from nothing"
    )
    parser.add_argument("--summary-json", type=Path, help="also write the outcome as JSON here")
    args = parser.parse_args(argv)

    from demo.scenario import ScenarioError, run_scenario

    began = time.monotonic()
    try:
        topology = load_topology()
        net = Consortium(topology, args.state_dir or default_state_dir(args.base_port), args.base_port)
        fabric_running = [n for n in net.running_nodes() if n.startswith(("orderer", "peer."))]
        if args.reset and net.state_dir.exists():
            print(f"Resetting: taking down the network in {net.state_dir}")
            net.down()
        elif fabric_running:
            print(
                f"Reusing the network already running in {net.state_dir} (use --reset to start from nothing)."
            )
        else:
            print(f"Starting a new network in {net.state_dir} on ports {args.base_port}+.")
        net.up()
        print(
            f"\nThe network is ready ({time.monotonic() - began:.1f} s). "
            "Playing the scenario through the REST gateways."
        )
        outcome = run_scenario(net.state_dir / "profile.json")
    except (NetworkError, MaterialError, NodeError, TopologyError, FileNotFoundError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except ScenarioError as exc:
        print(f"\nThe scenario stopped: {exc}", file=sys.stderr)
        print(f"Logs are in {net.state_dir / 'logs'}.", file=sys.stderr)
        return 1
    if args.summary_json:
        args.summary_json.write_text(json.dumps(outcome.__dict__, indent=2, default=str))

    profile = json.loads((net.state_dir / "profile.json").read_text())
    print("\nThe network keeps running:")
    for org in profile["orgs"].values():
        if org["kind"] == "bank":
            print(f"   {org['name']:<8} gateway {org['gateway_url']}   docs {org['gateway_url']}/docs")
            print(f"            operator key: {org['operator_key_file']}")
    print(
        f"   status: make status      stop and delete it: make down      (done in {time.monotonic() - began:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
