"""Separate hosts on one machine: one Linux network namespace per org, joined by a bridge.

Each org's processes run inside its own namespace with its own address, and reach the
others only over the bridge, as separate machines would over a LAN. Names carry this
process's id, so two runs never collide, and the addresses are in 198.18.0.0/15 (set aside
for network testing, RFC 2544), so they cannot clash with a real network. Everything is
removed at the end, even after a failure: the processes (by the pids the network tool
recorded, then whatever is left in the namespaces), the namespaces, the links.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from network.topology import DEFAULT_TOPOLOGY


def can_create_namespaces() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "network namespaces need root (run the suite as root, as CI does)"
    probe = f"dtprobe{os.getpid() % 100000}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return False, f"'ip netns add' failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return True, ""


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result


@dataclass
class Hosts:
    """A bridge and one namespace per org: ``address[org]`` is the org's host."""

    orgs: list[str]
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000:04d}")
    subnet: int = field(default_factory=lambda: 18 + (os.getpid() % 200))  # the bridge is 198.18.<subnet>.0/24
    namespaces: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    host_links: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"dtbr{self.tag}"

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"198.18.{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, org in enumerate(self.orgs):
            ns = f"dt{self.tag}-{i}"
            host_end, ns_end = f"dth{self.tag}{i}", f"dtn{self.tag}{i}"
            _ip("netns", "add", ns)
            self.namespaces[org] = ns
            _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            self.host_links[org] = host_end
            _ip("link", "set", ns_end, "netns", ns)
            _ip("link", "set", host_end, "master", self.bridge)
            _ip("link", "set", host_end, "up")
            address = f"198.18.{self.subnet}.{10 + i}"
            _ip("addr", "add", f"{address}/24", "dev", ns_end, netns=ns)
            _ip("link", "set", ns_end, "up", netns=ns)
            _ip("link", "set", "lo", "up", netns=ns)
            self.addresses[org] = address

    def cut(self, org: str) -> None:
        """Unplug the org's host from the network (its processes keep running)."""
        _ip("link", "set", self.host_links[org], "down")

    def heal(self, org: str) -> None:
        _ip("link", "set", self.host_links[org], "up")

    def destroy(self) -> None:
        for ns in self.namespaces.values():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
        for org, ns in self.namespaces.items():
            _ip("link", "del", self.host_links.get(org, ""), check=False)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)

    def topology(self, target: Path, consensus: str, base_port: int) -> Path:
        """The default topology with every org on its own namespace and address."""
        raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(DEFAULT_TOPOLOGY.read_text()))
        raw["network"]["base_port"] = base_port
        raw["orderer"]["consensus"] = consensus
        for org in [*raw["banks"], raw["regulator"]]:
            org["host"] = self.addresses[org["name"]]
            org["netns"] = self.namespaces[org["name"]]
        target.write_text(yaml.safe_dump(raw, sort_keys=False))
        return target


@contextlib.contextmanager
def separate_hosts(orgs: list[str]) -> Iterator[Hosts]:
    hosts = Hosts(orgs)
    try:
        hosts.create()
        yield hosts
    finally:
        hosts.destroy()
