"""CPU time per process kind, from ``/proc/<pid>/stat`` (utime + stime, all threads).

The bench reads every node's counters before and after a rate step; the difference divided by the
transactions committed in the step is the CPU cost per transaction of that kind of process. The bench's
own process and the load-tool processes it started and reaped count as ``client``.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KINDS = ("peer", "orderer", "chaincode", "gateway", "client")
# Peers that endorse nothing in the workloads (also counted under "peer"): what validating and
# committing alone costs one peer.
VALIDATOR = "validator"
# The gateways of orgs that are not banks (the regulator's): what watching the channel costs one,
# counted beside "gateway", which holds every gateway.
OVERSIGHT_GATEWAY = "oversight_gateway"


def cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU seconds of a process (all its threads), or ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ')' are fixed:
    # state is the first of them, utime the 12th and stime the 13th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _reaped_children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Snapshots of CPU seconds per kind for a fixed set of pids."""

    def __init__(self, pids_by_kind: Mapping[str, list[int]]) -> None:
        self.pids_by_kind = {kind: list(pids) for kind, pids in pids_by_kind.items()}

    def snapshot(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for kind, pids in self.pids_by_kind.items():
            totals[kind] = sum(cpu_seconds(pid) or 0.0 for pid in pids)
        client = cpu_seconds("self") or 0.0
        # A load tool counts once it has exited and been waited for: take snapshots outside its lifetime.
        client += _reaped_children_seconds()
        totals["client"] = totals.get("client", 0.0) + client
        return totals

    @staticmethod
    def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        return {kind: max(0.0, after.get(kind, 0.0) - before.get(kind, 0.0)) for kind in after}
