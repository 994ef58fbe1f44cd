"""Chaincode deployment as a service (CCaaS).

For every chaincode in the topology and every peer org:
1. package it: ``metadata.json`` (type ccaas) plus ``code.tar.gz`` holding the
   ``connection.json`` that points the org's peer at the org's own chaincode server;
2. install the package on the org's peer, approve the definition (collections config and
   endorsement policy) for the org, and commit it once a majority has approved;
3. start the org's chaincode server with the package id and wait until the chaincode
   answers a query through the peer.

Each org runs its own chaincode server, so each org has its own package (the address
differs) and its own package id; Fabric allows that, because package ids are approved per
org and are not part of the committed definition. Redeploying code is restarting the
servers: the package (an address) does not change.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaincode.deposit_token.collections import collections_config, signature_policy_any
from network import processes
from network.material import MaterialError
from network.nodes import ROOT, admin_env, fabric_bin, orderer_cli_args
from network.org import netns_prefix, run_in
from network.topology import ChaincodeSpec, Org

if TYPE_CHECKING:
    from network.consortium import Consortium


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of regular files only, with fixed metadata so the bytes (and so the package id) are stable."""
    buffer = io.BytesIO()
    # the gzip header carries a timestamp too: pin it, or every run makes a new package id
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def current_slot(net: Consortium, cc_name: str, org: Org) -> int:
    """Which of its two server slots the org's chaincode ``cc_name`` is served from (0 until upgraded)."""
    path = net.home(org).chaincode_dir / cc_name / "slot"
    return int(path.read_text()) if path.exists() else 0


def package_chaincode(net: Consortium, cc: ChaincodeSpec, org: Org, slot: int | None = None) -> tuple[Path, str]:
    """Write the org's CCaaS package for its server in ``slot`` (the current one by default); return its
    path and package id."""
    label = f"{cc.name}_{cc.version}"
    home = net.home(org)
    slot = current_slot(net, cc.name, org) if slot is None else slot
    address = f"{org.host}:{net.ports.peers[org.msp_id].chaincode_server(cc.name, slot)}"
    # Mutual TLS between the peer and its chaincode server: the server presents the org's
    # "chaincode" TLS identity, and the peer authenticates with its own TLS certificate.
    # Fabric wants PEM contents here, not paths.
    peer_tls = home.peer_dir / "tls"
    connection = {
        "address": address,
        "dial_timeout": "10s",
        "tls_required": True,
        "client_auth_required": True,
        "root_cert": home.tls_ca.read_text(),
        "client_cert": (peer_tls / "server.crt").read_text(),
        "client_key": (peer_tls / "server.key").read_text(),
    }
    code = _tar_bytes({"connection.json": json.dumps(connection, indent=2).encode()})
    metadata = json.dumps({"type": "ccaas", "label": label}).encode()
    package = _tar_bytes({"metadata.json": metadata, "code.tar.gz": code})
    out = home.chaincode_dir / cc.name / f"package-{cc.version}-slot{slot}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(package)
    return out, f"{label}:{hashlib.sha256(package).hexdigest()}"


def endorsement_policy(net: Consortium) -> str:
    # Any one org may endorse by default; what a single org may write is narrowed by the
    # collection-level policies (private books) and state-based endorsement (public keys).
    return signature_policy_any(org.msp_id for org in net.topology.peer_orgs)


@dataclass(frozen=True)
class Definition:
    """The chaincode definition every org approves: endorsement policy and collections config."""

    policy: str
    collections_file: Path | None
    fingerprint: str  # changes whenever a redeploy must approve and commit a new sequence

    def cli_args(self, channel: str, cc: ChaincodeSpec, sequence: int) -> list[str]:
        args = ["-C", channel, "-n", cc.name, "-v", cc.version, "--sequence", str(sequence),
                "--signature-policy", self.policy]  # fmt: skip
        if self.collections_file:
            args += ["--collections-config", str(self.collections_file)]
        return args


def chaincode_definition(net: Consortium, cc: ChaincodeSpec) -> Definition:
    policy = endorsement_policy(net)
    collections_file: Path | None = None
    fingerprint_parts: list[Any] = [cc.version, policy]
    if cc.collections == "deposit_token":
        config = collections_config(
            [bank.msp_id for bank in net.topology.banks], observer_msp_ids=[net.topology.regulator.msp_id]
        )
        collections_file = net.consortium_dir / "chaincode" / cc.name / "collections.json"
        collections_file.parent.mkdir(parents=True, exist_ok=True)
        collections_file.write_text(json.dumps(config, indent=2))
        fingerprint_parts.append(config)
    fingerprint = hashlib.sha256(json.dumps(fingerprint_parts, sort_keys=True).encode()).hexdigest()
    return Definition(policy, collections_file, fingerprint)


def committed_definition(net: Consortium, cc_name: str, org: Org | None = None) -> dict[str, Any] | None:
    org = org or net.topology.peer_orgs[0]
    env = admin_env(net.home(org), net.ports)
    try:
        out = run_in(
            org,
            [str(fabric_bin("peer")), "lifecycle", "chaincode", "querycommitted", "-C", net.topology.channel,
             "-n", cc_name, "-O", "json"],
            "querycommitted", env=env, timeout=30,
        )  # fmt: skip
    except MaterialError as exc:
        if "not found" in str(exc) or "not defined" in str(exc) or "does not exist" in str(exc):
            return None
        raise
    definition: dict[str, Any] = json.loads(out[out.index("{") :])
    return definition


def chaincode_server_spec(
    net: Consortium, cc: ChaincodeSpec, org: Org, package_id: str, slot: int | None = None
) -> processes.NodeSpec:
    slot = current_slot(net, cc.name, org) if slot is None else slot
    port = net.ports.peers[org.msp_id].chaincode_server(cc.name, slot)
    home = net.home(org)
    return processes.NodeSpec(
        name=f"cc.{cc.name}.{org.msp_id}",
        kind="chaincode",
        command=[*netns_prefix(org), sys.executable, "-m", "chaincode", "--contract", cc.contract],
        env={
            "CHAINCODE_ID": package_id,
            "CHAINCODE_SERVER_ADDRESS": f"{org.host}:{port}",
            "CORE_PEER_LOCALMSPID": org.msp_id,
            "CHAINCODE_LOG_LEVEL": "INFO",
            "CHAINCODE_TLS_CERT_FILE": str(home.chaincode_tls_dir / "server.crt"),
            "CHAINCODE_TLS_KEY_FILE": str(home.chaincode_tls_dir / "server.key"),
            # the peer authenticates with its TLS certificate, from the org's own TLS CA
            "CHAINCODE_TLS_CLIENT_CA_FILE": str(home.tls_ca),
            "PYTHONUNBUFFERED": "1",
        },
        cwd=str(ROOT),
        tcp_port=port,
        ports=[port],
        host=org.host,
    )


def contract_present(cc: ChaincodeSpec) -> bool:
    """Whether ``chaincode/`` holds the contract's module (the tool serves whatever is there)."""
    import importlib.util

    module = cc.contract.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def deploy_all(net: Consortium, with_test_chaincodes: bool = False) -> None:
    for cc in net.topology.chaincodes_for(with_test_chaincodes):
        if not contract_present(cc):
            net.progress(f"==> Skipping chaincode '{cc.name}': its contract {cc.contract} is not in chaincode/ yet")
            continue
        deploy_chaincode(net, cc)


def deploy_chaincode(net: Consortium, cc: ChaincodeSpec, restart_servers: bool = True) -> None:
    """Install, serve, approve and commit ``cc`` for every org; a new definition gets the next sequence.

    ``restart_servers`` restarts running chaincode servers to pick up new code; without it only
    servers that are not running start (a bank joining leaves the others' servers serving).
    """
    orgs = net.topology.peer_orgs
    definition = chaincode_definition(net, cc)
    stamp_path = net.consortium_dir / "chaincode" / cc.name / "committed.json"
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    current = committed_definition(net, cc.name)
    current_sequence = int(current["sequence"]) if current else 0

    t = net.step(f"Each org packages and installs chaincode '{cc.name}' on its own peer")
    package_ids = dict(zip((o.msp_id for o in orgs), net.for_each_org(lambda org: install(net, cc, org)), strict=True))
    net.done(t)

    # Start the servers before the definition is committed: the peer dials them on first use.
    starting = [
        org for org in orgs
        if restart_servers or processes.running_pid(net.home(org).root, f"cc.{cc.name}.{org.msp_id}") is None
    ]  # fmt: skip
    if starting:
        t = net.step(f"{_who(starting, orgs)} starts its own chaincode server for '{cc.name}'")
        net.for_each_org(lambda org: start_server(net, cc, org, package_ids[org.msp_id]), starting)
        net.done(t)

    up_to_date = (
        current is not None
        and stamp.get("fingerprint") == definition.fingerprint
        and stamp.get("sequence") == current_sequence
        and stamp.get("package_ids") == package_ids
    )
    if up_to_date:
        net.progress(f"    definition of '{cc.name}' is already committed at sequence {current_sequence}")
    else:
        sequence = current_sequence + 1
        t = net.step(f"Each org approves '{cc.name}' v{cc.version} sequence {sequence}; then one commits it")
        common = definition.cli_args(net.topology.channel, cc, sequence)
        net.for_each_org(lambda org: approve(net, org, common, package_ids[org.msp_id]))
        commit(net, orgs[0], common)
        stamp_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = {"fingerprint": definition.fingerprint, "sequence": sequence, "package_ids": package_ids}
        stamp_path.write_text(json.dumps(stamp, indent=2))
        net.done(t)

    t = net.step(f"Waiting until '{cc.name}' answers on every peer")
    net.for_each_org(lambda org: wait_chaincode_answers(net, cc, org))
    net.done(t)

    initialise(net, cc)


def _who(chosen: list[Org], everyone: tuple[Org, ...]) -> str:
    return "Each org" if len(chosen) == len(everyone) else ", ".join(org.name for org in chosen)


def initialise(net: Consortium, cc: ChaincodeSpec) -> None:
    """Submit the chaincode's init function once, as the regulator (its own folder remembers it did)."""
    if not cc.init_function:
        return
    regulator = net.topology.regulator
    marker = net.home(regulator).chaincode_dir / cc.name / "initialised"
    if marker.exists():
        return
    t = net.step(f"Initialising '{cc.name}' with the topology's reference data ({cc.init_function}, by the regulator)")
    invoke(net, cc.name, regulator, cc.init_function, [json.dumps(net.topology.reference_data())])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    net.done(t)


def install(net: Consortium, cc: ChaincodeSpec, org: Org, slot: int | None = None) -> str:
    """The org packages the chaincode for its own server and installs it on its own peer; returns the package id."""
    package, package_id = package_chaincode(net, cc, org, slot)
    marker = net.home(org).chaincode_dir / cc.name / "installed"
    if marker.exists() and marker.read_text() == package_id:
        return package_id
    try:
        run_in(org, [str(fabric_bin("peer")), "lifecycle", "chaincode", "install", str(package)],
               f"install on {org.name}", env=admin_env(net.home(org), net.ports))  # fmt: skip
    except MaterialError as exc:
        if "already successfully installed" not in str(exc):
            raise
    marker.write_text(package_id)
    return package_id


def start_server(net: Consortium, cc: ChaincodeSpec, org: Org, package_id: str) -> None:
    home = net.home(org)
    spec = chaincode_server_spec(net, cc, org, package_id)
    processes.save_specs(home.root, [spec])
    processes.stop(home.root, spec.name)  # pick up new code on redeploy
    processes.start(home.root, spec)
    processes.wait_healthy(home.root, [spec], timeout=30)


def approve(net: Consortium, org: Org, definition_args: list[str], package_id: str) -> None:
    """The org's admin approves the definition for the org, through the org's own orderer."""
    address, tls_ca = net.orderer_endpoint(org)
    args = [str(fabric_bin("peer")), "lifecycle", "chaincode", "approveformyorg", *orderer_cli_args(address, tls_ca),
            *definition_args, "--package-id", package_id]  # fmt: skip
    run_in(org, args, f"approveformyorg for {org.name}", env=admin_env(net.home(org), net.ports), timeout=60)


def commit(net: Consortium, committer: Org, definition_args: list[str]) -> None:
    """Commit once approved: endorsed by every org's peer, each dialled with the TLS root from its definition."""
    address, tls_ca = net.orderer_endpoint(committer)
    peer_args: list[str] = []
    for org in net.topology.peer_orgs:
        peer_args += ["--peerAddresses", net.ports.peers[org.msp_id].address,
                      "--tlsRootCertFiles", str(net.org_tls_ca(org.msp_id))]  # fmt: skip
    run_in(
        committer,
        [str(fabric_bin("peer")), "lifecycle", "chaincode", "commit", *orderer_cli_args(address, tls_ca),
         *definition_args, *peer_args],
        f"commit by {committer.name}", env=admin_env(net.home(committer), net.ports), timeout=60,
    )  # fmt: skip


def wait_chaincode_answers(net: Consortium, cc: ChaincodeSpec, org: Org, timeout: float = 90) -> None:
    env = admin_env(net.home(org), net.ports)
    args = [str(fabric_bin("peer")), "chaincode", "query", "-C", net.topology.channel, "-n", cc.name,
            "-c", json.dumps({"Args": ["org.hyperledger.fabric:GetMetadata"]})]  # fmt: skip
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            run_in(org, args, f"query {cc.name} on {org.name}", env=env, timeout=40)
            return
        except MaterialError as exc:
            last = str(exc)
            time.sleep(1)
    raise MaterialError(
        f"chaincode '{cc.name}' did not answer on {org.name}'s peer within {timeout:.0f}s: {last[-800:]}\n"
        f"chaincode server log:\n{processes.tail(net.home(org).root, f'cc.{cc.name}.{org.msp_id}')}"
    )


def invoke(
    net: Consortium, cc_name: str, org: Org, function: str, args: list[str], orderer: str | None = None,
    wait: float = 30,
) -> str:
    """Submit through ``org``'s peer as its admin and wait for the commit; the output names the status.

    ``orderer`` names the ordering node (default: the org's own, or the channel's first).
    """
    home = net.home(org)
    env = admin_env(home, net.ports)
    env["FABRIC_LOGGING_SPEC"] = "info:grpc=error"  # the "committed with status (VALID)" line is INFO
    if orderer is None:
        address, tls_ca = net.orderer_endpoint(org)
    else:
        node = net.topology.orderer_node(orderer)
        address, tls_ca = net.ports.orderers[orderer].address, net.org_tls_ca(node.org.msp_id)
    ctor = json.dumps({"function": function, "Args": args})
    return run_in(
        org,
        [str(fabric_bin("peer")), "chaincode", "invoke", *orderer_cli_args(address, tls_ca),
         "-C", net.topology.channel, "-n", cc_name,
         "--peerAddresses", net.ports.peers[org.msp_id].address, "--tlsRootCertFiles", str(home.tls_ca),
         "-c", ctor, "--waitForEvent", "--waitForEventTimeout", f"{wait:.0f}s"],
        f"invoke {function} on {cc_name}", env=env, timeout=wait + 30,
    )  # fmt: skip


def approve_for_org(net: Consortium, cc: ChaincodeSpec, org: Org) -> None:
    """One org, on its own host: install, start its chaincode server, approve the next definition."""
    if not contract_present(cc):
        return
    t = net.step(f"{org.name}: installing '{cc.name}', starting its server, approving the definition")
    package_id = install(net, cc, org)
    start_server(net, cc, org, package_id)
    current = committed_definition(net, cc.name, org)
    # a definition already committed is approved at its own sequence (an org catching up); else the next one
    sequence = int(current["sequence"]) if current else 1
    approve(net, org, chaincode_definition(net, cc).cli_args(net.topology.channel, cc, sequence), package_id)
    net.done(t)


def commit_for_consortium(net: Consortium, cc: ChaincodeSpec, committer: Org) -> None:
    """One org commits the definition every org approved; the regulator also loads the reference data."""
    if not contract_present(cc):
        return
    current = committed_definition(net, cc.name, committer)
    if current is None:
        t = net.step(f"{committer.name}: committing '{cc.name}' (endorsed by every org's peer)")
        commit(net, committer, chaincode_definition(net, cc).cli_args(net.topology.channel, cc, 1))
        net.done(t)
    wait_chaincode_answers(net, cc, committer)
    if cc.init_function and committer.kind != "regulator":
        net.progress(f"    '{cc.name}' needs {cc.init_function} by the regulator: run the commit as the regulator")
        return
    initialise(net, cc)
