"""Where the time goes inside Fabric: the nodes' Prometheus histograms, read before and after a step.

Peers and orderers expose ``/metrics`` on their operations address. For each histogram below the bench
keeps the change of its ``_sum`` and ``_count`` over a step, summed over nodes and label sets, and
reports the mean duration and how many observations there were per committed transaction (for
example ``chaincode_shim_request_duration`` counts the chaincode's requests to the peer, per type).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

PEER_HISTOGRAMS = (
    "endorser_proposal_duration",
    "chaincode_shim_request_duration",
    "ledger_block_processing_time",
    "ledger_blockstorage_and_pvtdata_commit_time",
    "ledger_statedb_commit_time",
    "gossip_privdata_send_duration",
    "gossip_privdata_validation_duration",
    "gossip_privdata_commit_block_duration",
    "gossip_state_commit_duration",
)
ORDERER_HISTOGRAMS = (
    "broadcast_validate_duration",
    "broadcast_enqueue_duration",
    "consensus_etcdraft_data_persist_duration",
    "blockcutter_block_fill_duration",
)
# Broken down by this label (the others are summed).
BY_LABEL = {"chaincode_shim_request_duration": "type"}

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+?)_(?P<part>sum|count)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

Totals = dict[str, tuple[float, float]]  # series -> (sum, count)


def parse_histograms(text: str, names: Iterable[str]) -> Totals:
    """``_sum`` and ``_count`` of the named histograms in a Prometheus text exposition."""
    wanted = set(names)
    totals: Totals = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group("name") not in wanted:
            continue
        name = match.group("name")
        series = name
        label = BY_LABEL.get(name)
        if label:
            labels = dict(_LABEL.findall(match.group("labels") or ""))
            series = f"{name}[{labels.get(label, '')}]"
        total, count = totals.get(series, (0.0, 0.0))
        value = float(match.group("value"))
        if match.group("part") == "sum":
            total += value
        else:
            count += value
        totals[series] = (total, count)
    return totals


def _scrape(url: str, names: Iterable[str]) -> Totals:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return {}  # a node without an operations endpoint simply contributes nothing
    return parse_histograms(text, names)


class FabricMetrics:
    """Histogram totals of every peer and orderer whose operations address answers."""

    def __init__(self, peer_urls: Iterable[str], orderer_urls: Iterable[str]) -> None:
        self.targets: list[tuple[str, str, tuple[str, ...]]] = [(url, "peer", PEER_HISTOGRAMS) for url in peer_urls]
        self.targets += [(url, "orderer", ORDERER_HISTOGRAMS) for url in orderer_urls]

    def snapshot(self) -> Totals:
        merged: Totals = {}
        with ThreadPoolExecutor(max_workers=8) as pool:
            scraped = pool.map(lambda target: (target[1], _scrape(target[0], target[2])), self.targets)
            for kind, totals in scraped:
                for series, (total, count) in totals.items():
                    key = f"{kind}.{series}"
                    old_total, old_count = merged.get(key, (0.0, 0.0))
                    merged[key] = (old_total + total, old_count + count)
        return merged

    @staticmethod
    def summarize(before: Totals, after: Totals, committed: int) -> dict[str, dict[str, float]]:
        """Per series: mean milliseconds and observations per committed transaction."""
        summary: dict[str, dict[str, float]] = {}
        for key, (total, count) in sorted(after.items()):
            old_total, old_count = before.get(key, (0.0, 0.0))
            observations = count - old_count
            if observations <= 0:
                continue
            summary[key] = {
                "mean_ms": round((total - old_total) * 1000 / observations, 2),
                "per_tx": round(observations / committed, 2) if committed else 0.0,
            }
        return summary


def metrics_urls(profile: Mapping[str, object], nodes: Iterable[Mapping[str, object]]) -> tuple[list[str], list[str]]:
    """Operations URLs of the peers (from the profile) and of the orderers (their third port)."""
    peers: list[str] = []
    orgs = profile.get("orgs")
    if isinstance(orgs, dict):
        for org in orgs.values():
            ops = (org.get("peer") or {}).get("ops_address") if isinstance(org, dict) else None
            if ops:
                peers.append(f"http://{ops}/metrics")
    orderers: list[str] = []
    for node in nodes:
        ports = node.get("ports")
        if node.get("kind") == "orderer" and isinstance(ports, list) and len(ports) >= 3:
            # The network tool's port plan: listen, admin, operations; on the host of the org running it.
            orderers.append(f"http://{node.get('host') or '127.0.0.1'}:{ports[2]}/metrics")
    return peers, orderers
