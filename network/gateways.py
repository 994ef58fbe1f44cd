"""One REST gateway per bank and one for the regulator (gateway/bank_api), started as native
processes like the nodes.

Each gateway holds its org's client identity, talks only to its org's peer, and writes its
operator API key to the org's ``gateway/operator.key`` on first start (the path is in the
profile as ``operator_key_file``). The profile's org kind makes the regulator's gateway serve
the regulator's routes (oversight, corridor policy) instead of a bank's.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from network import processes
from network.nodes import ROOT
from network.org import netns_prefix

if TYPE_CHECKING:
    from network.consortium import Consortium
    from network.topology import Org


def gateway_spec(net: Consortium, msp_id: str) -> processes.NodeSpec:
    port = net.ports.peers[msp_id].gateway
    org = net.topology.org(msp_id)
    return processes.NodeSpec(
        name=f"gateway.{msp_id}",
        kind="gateway",
        command=[
            *netns_prefix(org),
            sys.executable,
            "-m",
            "gateway.bank_api",
            "serve",
            "--profile",
            str(net.state_dir / "profile.json"),
            "--msp",
            msp_id,
            "--host",
            org.host,
            "--port",
            str(port),
        ],
        env={"PYTHONUNBUFFERED": "1"},
        cwd=str(ROOT),
        health_url=f"http://{org.host}:{port}/healthz",
        ports=[port],
        host=org.host,
    )


def start_gateways(net: Consortium, banks: Iterable[Org] | None = None) -> None:
    """Start (or restart, to pick up new code) the REST gateway of each org given: by default
    every bank's and the regulator's."""
    if importlib.util.find_spec("gateway.bank_api.__main__") is None:
        net.progress("==> Skipping the REST gateways: gateway/bank_api is not there yet")
        return
    chosen = list((*net.topology.banks, net.topology.regulator) if banks is None else banks)
    net.write_profile()  # the gateways read it
    t = net.step(f"Each org starts its REST gateway ({', '.join(b.name for b in chosen)})")
    specs = []
    for bank in chosen:
        home, spec = net.home(bank), gateway_spec(net, bank.msp_id)
        processes.save_specs(home.root, [spec])
        processes.stop(home.root, spec.name)  # pick up new code
        processes.start(home.root, spec)
        specs.append((home, spec))
    for home, spec in specs:
        processes.wait_healthy(home.root, [spec], timeout=60)
    for bank in chosen:
        net.progress(f"    {bank.name}: http://{bank.host}:{net.ports.peers[bank.msp_id].gateway}")
    net.done(t)
