"""The channel genesis block (configtxgen), built from org definitions alone.

Whoever creates the channel needs only the public org definitions (network.definition), not
any org's folder: each org's channel MSP and each ordering node's certificates are written
out of its definition into the consortium folder, and configtxgen reads them from there.
Every org then checks the block and joins its own nodes with it; nobody orders for others.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from network.definition import OrgDefinition
    from network.topology import Ordering


class MaterialError(RuntimeError):
    pass


def _org_policies(msp_id: str, application: bool) -> dict[str, Any]:
    if application:
        return {
            "Readers": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin', '{msp_id}.peer', '{msp_id}.client')"},
            "Writers": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin', '{msp_id}.client')"},
            "Admins": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin')"},
            "Endorsement": {"Type": "Signature", "Rule": f"OR('{msp_id}.peer')"},
        }
    # the org's ordering side: its orderers read and write blocks, its admin administers them
    return {
        "Readers": {"Type": "Signature", "Rule": f"OR('{msp_id}.member')"},
        "Writers": {"Type": "Signature", "Rule": f"OR('{msp_id}.member')"},
        "Admins": {"Type": "Signature", "Rule": f"OR('{msp_id}.admin')"},
    }


def _implicit(rule: str) -> dict[str, str]:
    return {"Type": "ImplicitMeta", "Rule": rule}


def _duration_ms(text: str) -> int:
    return int(text[:-2]) if text.endswith("ms") else int(text[:-1]) * 1000


def smartbft_options(ordering: Ordering) -> dict[str, Any]:
    """SmartBFT settings: defaults from Fabric's BFT guide, with a leader failure noticed in seconds.

    The ordering is RequestForwardTimeout < RequestComplainTimeout < RequestAutoRemoveTimeout and
    ViewChangeResendInterval < ViewChangeTimeout, which SmartBFT checks at start.
    """
    return {
        "RequestBatchMaxCount": ordering.max_message_count,
        "RequestBatchMaxBytes": 10485760,
        "RequestBatchMaxInterval": f"{_duration_ms(ordering.batch_timeout)}ms",
        "IncomingMessageBufferSize": 200,
        "RequestPoolSize": 100000,
        "RequestForwardTimeout": "2s",
        "RequestComplainTimeout": "8s",
        "RequestAutoRemoveTimeout": "3m0s",
        "ViewChangeResendInterval": "5s",
        "ViewChangeTimeout": "20s",
        "LeaderHeartbeatTimeout": "10s",
        "LeaderHeartbeatCount": 10,
        "CollectTimeout": "1s",
    }


def application_org(d: OrgDefinition, msp_dir: Path) -> dict[str, Any]:
    """The org as a member of the channel's Application group (configtx.yaml form)."""
    return {
        "Name": d.msp_id,
        "ID": d.msp_id,
        "MSPDir": str(msp_dir),
        "Policies": _org_policies(d.msp_id, application=True),
        "AnchorPeers": [{"Host": h, "Port": p} for h, p in d.anchor_peers],
    }


def orderer_org(d: OrgDefinition, msp_dir: Path) -> dict[str, Any]:
    """The org as a member of the channel's Orderer group: its MSP and its nodes' endpoints."""
    return {
        "Name": d.msp_id,
        "ID": d.msp_id,
        "MSPDir": str(msp_dir),
        "Policies": _org_policies(d.msp_id, application=False),
        "OrdererEndpoints": [o.address for o in d.orderers],
    }


def print_org(work: Path, org: dict[str, Any], configtxgen: Path) -> dict[str, Any]:
    """The org's config group as configtxlator JSON (``configtxgen -printOrg``), for a config update.

    An org with ``OrdererEndpoints`` comes out as an Orderer org group, else as an Application one.
    """
    import json

    work.mkdir(parents=True, exist_ok=True)
    (work / "configtx.yaml").write_text(
        yaml.safe_dump({"Organizations": [org], "Capabilities": {"Channel": {"V3_0": True}}}, sort_keys=False)
    )
    name = org["Name"]
    out = run([str(configtxgen), "-configPath", str(work), "-printOrg", name], f"configtxgen -printOrg {name}")
    # the JSON is on stdout; log lines (stderr) follow it
    group, _end = json.JSONDecoder().raw_decode(out[out.index("{") :])
    return dict(group)


def write_configtx(
    consortium_dir: Path, definitions: list[OrgDefinition], ordering: Ordering
) -> Path:
    """configtx.yaml for the channel, from the org definitions; MSP folders and certificates beside it."""
    from network.definition import write_channel_msp

    msp_root = consortium_dir / "msp"
    node_root = consortium_dir / "orderers"
    application_orgs: list[dict[str, Any]] = []
    orderer_orgs: list[dict[str, Any]] = []
    raft: list[dict[str, Any]] = []
    bft: list[dict[str, Any]] = []
    for d in definitions:
        msp_dir = write_channel_msp(d, msp_root / d.msp_id)
        application_orgs.append(application_org(d, msp_dir))
        if not d.orderers:
            continue
        orderer_orgs.append(orderer_org(d, msp_dir))
        for o in d.orderers:
            folder = node_root / o.name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "tls.pem").write_text(o.tls_cert_pem)
            (folder / "identity.pem").write_text(o.identity_pem)
            raft.append(
                {"Host": o.host, "Port": o.port, "ClientTLSCert": str(folder / "tls.pem"),
                 "ServerTLSCert": str(folder / "tls.pem")}
            )  # fmt: skip
            bft.append(
                {"ID": o.consenter_id, "Host": o.host, "Port": o.port, "MSPID": d.msp_id,
                 "Identity": str(folder / "identity.pem"), "ClientTLSCert": str(folder / "tls.pem"),
                 "ServerTLSCert": str(folder / "tls.pem")}
            )  # fmt: skip
    orderer: dict[str, Any] = {
        "OrdererType": ordering.consensus,
        "BatchTimeout": ordering.batch_timeout,
        "BatchSize": {
            "MaxMessageCount": ordering.max_message_count,
            "AbsoluteMaxBytes": "99 MB",
            "PreferredMaxBytes": ordering.preferred_max_bytes,
        },
        "Organizations": orderer_orgs,
        "Policies": {
            "Readers": _implicit("ANY Readers"),
            "Writers": _implicit("ANY Writers"),
            "Admins": _implicit("MAJORITY Admins"),
            # configtxgen replaces this with the consenters' signature quorum under BFT
            "BlockValidation": _implicit("ANY Writers"),
        },
        "Capabilities": {"V2_0": True},
    }
    if ordering.consensus == "BFT":
        orderer["ConsenterMapping"] = sorted(bft, key=lambda c: c["ID"])
        orderer["SmartBFT"] = smartbft_options(ordering)
    else:
        orderer["EtcdRaft"] = {
            "Consenters": raft,
            "Options": {
                "TickInterval": "500ms",
                "ElectionTick": 10,
                "HeartbeatTick": 1,
                "MaxInflightBlocks": 5,
                "SnapshotIntervalSize": "16 MB",
            },
        }
    profile = {
        "Policies": {
            "Readers": _implicit("ANY Readers"),
            "Writers": _implicit("ANY Writers"),
            "Admins": _implicit("MAJORITY Admins"),
        },
        "Capabilities": {"V3_0": True},
        "Orderer": orderer,
        "Application": {
            "Organizations": application_orgs,
            "Policies": {
                "Readers": _implicit("ANY Readers"),
                "Writers": _implicit("ANY Writers"),
                "Admins": _implicit("MAJORITY Admins"),
                "LifecycleEndorsement": _implicit("MAJORITY Endorsement"),
                "Endorsement": _implicit("MAJORITY Endorsement"),
            },
            # V2_5 is what enables private-data purge
            "Capabilities": {"V2_5": True},
        },
    }
    consortium_dir.mkdir(parents=True, exist_ok=True)
    path = consortium_dir / "configtx.yaml"
    path.write_text(yaml.safe_dump({"Profiles": {"DepositTokenChannel": profile}}, sort_keys=False))
    return path


def write_genesis_block(
    consortium_dir: Path, channel: str, definitions: list[OrgDefinition], ordering: Ordering, configtxgen: Path
) -> Path:
    configtx = write_configtx(consortium_dir, definitions, ordering)
    block = consortium_dir / f"{channel}.block"
    run(
        [str(configtxgen), "-configPath", str(configtx.parent), "-profile", "DepositTokenChannel",
         "-channelID", channel, "-outputBlock", str(block)],
        "configtxgen",
    )  # fmt: skip
    return block


def run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MaterialError(f"{what} did not finish within {timeout:.0f}s") from exc
    if result.returncode != 0:
        output = (result.stderr or "") + (result.stdout or "")
        raise MaterialError(f"{what} failed (exit {result.returncode}):\n{output.strip()[-3000:]}")
    return result.stdout + result.stderr
