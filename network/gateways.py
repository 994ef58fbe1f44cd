"""One REST gateway per bank (gateway/bank_api), started as a native process like the nodes.

Each gateway holds its bank's client identity, talks only to its bank's peer, and writes
its operator API key to ``<state>/gateways/<MSP>/operator.key`` on first start (the path
is in the profile as ``operator_key_file``).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

from network import processes
from network.nodes import ROOT
from network.ports import HOST

if TYPE_CHECKING:
    from network.consortium import Consortium


def gateway_spec(net: Consortium, msp_id: str) -> processes.NodeSpec:
    port = net.ports.peers[msp_id].gateway
    return processes.NodeSpec(
        name=f"gateway.{msp_id}",
        kind="gateway",
        command=[
            sys.executable,
            "-m",
            "gateway.bank_api",
            "serve",
            "--profile",
            str(net.state_dir / "profile.json"),
            "--msp",
            msp_id,
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        env={"PYTHONUNBUFFERED": "1"},
        cwd=str(ROOT),
        health_url=f"http://{HOST}:{port}/healthz",
        ports=[port],
    )


def start_gateways(net: Consortium, restart: bool = True) -> None:
    if importlib.util.find_spec("gateway.bank_api.__main__") is None:
        net.progress("==> Skipping the REST gateways: gateway/bank_api is not there yet")
        return
    net.write_profile()  # the gateways read it
    specs = [gateway_spec(net, bank.msp_id) for bank in net.topology.banks]
    processes.save_specs(net.state_dir, specs)
    t = net.step(f"Starting {len(specs)} REST gateways (one per bank)")
    for spec in specs:
        if restart:
            processes.stop(net.state_dir, spec.name)  # pick up new code
        processes.start(net.state_dir, spec)
    processes.wait_healthy(net.state_dir, specs, timeout=60)
    for bank in net.topology.banks:
        net.progress(f"    {bank.name}: http://{HOST}:{net.ports.peers[bank.msp_id].gateway}")
    net.done(t)
