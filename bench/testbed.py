"""The network under test: our own one on the bench ports, or one described by a given profile.

Everything here goes through the network tool (``python -m network``): ``up`` and ``down`` for a
network of our own, ``status --json`` for the pid and kind of every node, which the CPU meter reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "network" / "network.yaml"


class TestbedError(RuntimeError):
    """The network could not be started, found or inspected; the message says which."""


@dataclass
class BlockCutting:
    """The orderer's block-cutting settings of the channel under test."""

    batch_timeout: str
    max_message_count: int
    preferred_max_bytes: str

    @property
    def batch_timeout_ms(self) -> float:
        text = self.batch_timeout.strip()
        for unit, factor in (("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * factor
        raise TestbedError(f"batch timeout {self.batch_timeout!r} is not a duration like 250ms")


@dataclass
class Testbed:
    profile_path: Path
    state_dir: Path
    base_port: int
    topology: Path
    own: bool
    profile: dict[str, Any] = field(default_factory=dict)

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_profile(cls, profile_path: Path) -> Testbed:
        try:
            profile = json.loads(profile_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TestbedError(f"profile {profile_path} does not exist (is the network up?)") from None
        except json.JSONDecodeError as error:
            raise TestbedError(f"profile {profile_path} is not valid JSON: {error}") from None
        state_dir = Path(profile.get("state_dir") or profile_path.parent)
        settings = _settings(state_dir)
        return cls(
            profile_path=profile_path.resolve(),
            state_dir=state_dir,
            base_port=int(settings.get("base_port", 0)),
            topology=Path(settings.get("topology", DEFAULT_TOPOLOGY)),
            own=False,
            profile=profile,
        )

    @classmethod
    def start_own(
        cls,
        state_dir: Path,
        base_port: int,
        *,
        topology: Path = DEFAULT_TOPOLOGY,
        gateways: bool = True,
        log: Any = None,
    ) -> Testbed:
        """Start (or reuse) a network of our own with the test chaincodes and the REST gateways."""
        bed = cls(
            profile_path=(state_dir / "profile.json").resolve(),
            state_dir=state_dir.resolve(),
            base_port=base_port,
            topology=topology,
            own=True,
        )
        args = ["up", "--with-test-chaincodes"]
        if not gateways:
            args.append("--no-gateways")
        result = bed.network_cli(*args, timeout=900)
        if log is not None:
            log(result.stdout.rstrip())
        if result.returncode != 0:
            raise TestbedError(
                f"'python -m network up' failed ({result.returncode}):\n{result.stdout[-2000:]}\n"
                f"{result.stderr[-4000:]}"
            )
        bed.profile = json.loads(bed.profile_path.read_text(encoding="utf-8"))
        return bed

    # -- the network tool ----------------------------------------------------
    def network_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "network", "--topology", str(self.topology)]
        if self.base_port:
            command += ["--base-port", str(self.base_port)]
        command += ["--state-dir", str(self.state_dir), *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)

    def nodes(self) -> list[dict[str, Any]]:
        """Every node of the network with ``name``, ``kind``, ``pid``, ``healthy``."""
        result = self.network_cli("status", "--json")
        try:
            info = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise TestbedError(f"'network status --json' gave no JSON: {result.stderr[-2000:]}") from None
        nodes = info.get("nodes")
        if not isinstance(nodes, list):
            raise TestbedError("'network status --json' lists no nodes")
        return nodes

    def pids_by_kind(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for node in self.nodes():
            if node.get("pid"):
                found.setdefault(str(node["kind"]), []).append(int(node["pid"]))
        return found

    def validator_pids(self) -> list[int]:
        """The peers of orgs that are not banks (the regulator's): no workload sends them a proposal,
        so their CPU is what validating and committing the channel's transactions costs a peer."""
        orgs: dict[str, Any] = self.profile.get("orgs", {})
        observers = {str(org.get("name")) for org in orgs.values() if org.get("kind", "bank") != "bank"}
        return [
            int(node["pid"])
            for node in self.nodes()
            if node.get("kind") == "peer" and node.get("org") in observers and node.get("pid")
        ]

    def oversight_gateway_pids(self) -> list[int]:
        """The gateways of orgs that are not banks (the regulator's): they follow every block, take no load."""
        orgs: dict[str, Any] = self.profile.get("orgs", {})
        observers = {str(org.get("name")) for org in orgs.values() if org.get("kind", "bank") != "bank"}
        return [
            int(node["pid"])
            for node in self.nodes()
            if node.get("kind") == "gateway" and node.get("org") in observers and node.get("pid")
        ]

    def healthy_gateways(self) -> list[str]:
        return [n["name"] for n in self.nodes() if n.get("kind") == "gateway" and n.get("healthy")]

    def down(self) -> str:
        result = self.network_cli("down", timeout=300)
        return (result.stdout + result.stderr).strip()

    # -- what the profile says -----------------------------------------------
    @property
    def channel(self) -> str:
        return str(self.profile.get("channel", "tokens"))

    def banks(self) -> list[str]:
        orgs: dict[str, Any] = self.profile.get("orgs", {})
        return sorted(msp for msp, org in orgs.items() if org.get("kind", "bank") == "bank")

    def org(self, msp_id: str) -> dict[str, Any]:
        return dict(self.profile["orgs"][msp_id])

    def chaincodes(self) -> set[str]:
        return set(self.profile.get("chaincodes", {}))

    def block_cutting(self) -> BlockCutting:
        raw = yaml.safe_load(self.topology.read_text(encoding="utf-8"))
        orderer = raw.get("orderer", {})
        return BlockCutting(
            batch_timeout=str(orderer.get("batch_timeout", "2s")),
            max_message_count=int(orderer.get("max_message_count", 500)),
            preferred_max_bytes=str(orderer.get("preferred_max_bytes", "")),
        )


def _settings(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "network-settings.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def topology_with_block_cutting(
    source: Path, target_dir: Path, batch_timeout: str | None, max_message_count: int | None
) -> Path:
    """A copy of the topology with other block-cutting values, to measure them without editing the
    shared ``network/network.yaml``."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    if batch_timeout:
        raw["orderer"]["batch_timeout"] = batch_timeout
    if max_message_count:
        raw["orderer"]["max_message_count"] = max_message_count
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "network.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return target
