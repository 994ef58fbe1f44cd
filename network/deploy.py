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

import concurrent.futures
import gzip
import hashlib
import io
import json
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaincode.deposit_token.collections import collections_config, signature_policy_any
from network import processes
from network.material import MaterialError, run
from network.nodes import ROOT, admin_env, fabric_bin, orderer_cli_args
from network.ports import HOST
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


def package_chaincode(net: Consortium, cc: ChaincodeSpec, org: Org) -> tuple[Path, str]:
    """Write the org's CCaaS package; return its path and package id."""
    label = f"{cc.name}_{cc.version}"
    address = f"{HOST}:{net.ports.peers[org.msp_id].chaincode_servers[cc.name]}"
    # Mutual TLS between the peer and its chaincode server: the server presents the org's
    # "chaincode" TLS identity, and the peer authenticates with its own TLS certificate.
    # Fabric wants PEM contents here, not paths.
    peer_tls = net.layout.peer_dir(org) / "tls"
    connection = {
        "address": address,
        "dial_timeout": "10s",
        "tls_required": True,
        "client_auth_required": True,
        "root_cert": net.layout.tls_ca(org).read_text(),
        "client_cert": (peer_tls / "server.crt").read_text(),
        "client_key": (peer_tls / "server.key").read_text(),
    }
    code = _tar_bytes({"connection.json": json.dumps(connection, indent=2).encode()})
    metadata = json.dumps({"type": "ccaas", "label": label}).encode()
    package = _tar_bytes({"metadata.json": metadata, "code.tar.gz": code})
    out = net.state_dir / "chaincode" / cc.name / f"{org.msp_id}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(package)
    return out, f"{label}:{hashlib.sha256(package).hexdigest()}"


def endorsement_policy(net: Consortium) -> str:
    # Any one org may endorse by default; what a single org may write is narrowed by the
    # collection-level policies (private books) and state-based endorsement (public keys).
    return signature_policy_any(org.msp_id for org in net.topology.peer_orgs)


def _definition(net: Consortium, cc: ChaincodeSpec) -> tuple[str, Path | None, str]:
    policy = endorsement_policy(net)
    collections_file: Path | None = None
    fingerprint_parts: list[Any] = [cc.version, policy]
    if cc.collections == "deposit_token":
        config = collections_config(
            [bank.msp_id for bank in net.topology.banks], observer_msp_ids=[net.topology.regulator.msp_id]
        )
        collections_file = net.state_dir / "chaincode" / cc.name / "collections.json"
        collections_file.parent.mkdir(parents=True, exist_ok=True)
        collections_file.write_text(json.dumps(config, indent=2))
        fingerprint_parts.append(config)
    fingerprint = hashlib.sha256(json.dumps(fingerprint_parts, sort_keys=True).encode()).hexdigest()
    return policy, collections_file, fingerprint


def committed_definition(net: Consortium, cc_name: str) -> dict[str, Any] | None:
    org = net.topology.peer_orgs[0]
    env = admin_env(net.layout, net.ports, org)
    try:
        out = run(
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


def chaincode_server_spec(net: Consortium, cc: ChaincodeSpec, org: Org, package_id: str) -> processes.NodeSpec:
    port = net.ports.peers[org.msp_id].chaincode_servers[cc.name]
    return processes.NodeSpec(
        name=f"cc.{cc.name}.{org.msp_id}",
        kind="chaincode",
        command=[sys.executable, "-m", "chaincode", "--contract", cc.contract],
        env={
            "CHAINCODE_ID": package_id,
            "CHAINCODE_SERVER_ADDRESS": f"{HOST}:{port}",
            "CORE_PEER_LOCALMSPID": org.msp_id,
            "CHAINCODE_LOG_LEVEL": "INFO",
            "CHAINCODE_TLS_CERT_FILE": str(net.layout.chaincode_tls_dir(org) / "server.crt"),
            "CHAINCODE_TLS_KEY_FILE": str(net.layout.chaincode_tls_dir(org) / "server.key"),
            "CHAINCODE_TLS_CLIENT_CA_FILE": str(net.layout.tls_ca(org)),
            "PYTHONUNBUFFERED": "1",
        },
        cwd=str(ROOT),
        tcp_port=port,
        ports=[port],
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


def deploy_chaincode(net: Consortium, cc: ChaincodeSpec) -> None:
    orgs = net.topology.peer_orgs
    peer = str(fabric_bin("peer"))
    policy, collections_file, fingerprint = _definition(net, cc)
    stamp_path = net.state_dir / "chaincode" / cc.name / "committed.json"
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    current = committed_definition(net, cc.name)
    current_sequence = int(current["sequence"]) if current else 0

    t = net.step(f"Packaging and installing chaincode '{cc.name}' on {len(orgs)} peers")
    package_ids: dict[str, str] = {}
    packages: dict[str, Path] = {}
    for org in orgs:
        packages[org.msp_id], package_ids[org.msp_id] = package_chaincode(net, cc, org)

    def install(org: Org) -> None:
        if stamp.get("package_ids", {}).get(org.msp_id) == package_ids[org.msp_id]:
            return
        env = admin_env(net.layout, net.ports, org)
        try:
            run(
                [peer, "lifecycle", "chaincode", "install", str(packages[org.msp_id])],
                f"install on {org.name}",
                env=env,
            )
        except MaterialError as exc:
            if "already successfully installed" not in str(exc):
                raise

    _parallel(install, orgs)
    net.done(t)

    # Start the servers before the definition is committed: the peer dials them on first use.
    specs = [chaincode_server_spec(net, cc, org, package_ids[org.msp_id]) for org in orgs]
    processes.save_specs(net.state_dir, specs)
    t = net.step(f"Starting {len(specs)} chaincode servers for '{cc.name}' (one per org)")
    for spec in specs:
        processes.stop(net.state_dir, spec.name)  # pick up new code on redeploy
        processes.start(net.state_dir, spec)
    processes.wait_healthy(net.state_dir, specs, timeout=30)
    net.done(t)

    up_to_date = (
        current is not None
        and stamp.get("fingerprint") == fingerprint
        and stamp.get("sequence") == current_sequence
        and stamp.get("package_ids") == package_ids
    )
    if up_to_date:
        net.progress(f"    definition of '{cc.name}' is already committed at sequence {current_sequence}")
    else:
        sequence = current_sequence + 1
        t = net.step(f"Approving '{cc.name}' v{cc.version} sequence {sequence} for every org, then committing")
        common = ["-C", net.topology.channel, "-n", cc.name, "-v", cc.version, "--sequence", str(sequence),
                  "--signature-policy", policy]  # fmt: skip
        if collections_file:
            common += ["--collections-config", str(collections_file)]

        def approve(org: Org) -> None:
            env = admin_env(net.layout, net.ports, org)
            args = [peer, "lifecycle", "chaincode", "approveformyorg", *orderer_cli_args(net.layout, net.ports),
                    *common, "--package-id", package_ids[org.msp_id]]  # fmt: skip
            run(args, f"approveformyorg for {org.name}", env=env, timeout=60)

        _parallel(approve, orgs)
        first = orgs[0]
        peer_args: list[str] = []
        for org in orgs:
            peer_args += ["--peerAddresses", f"{HOST}:{net.ports.peers[org.msp_id].listen}",
                          "--tlsRootCertFiles", str(net.layout.tls_ca(org))]  # fmt: skip
        run(
            [
                peer,
                "lifecycle",
                "chaincode",
                "commit",
                *orderer_cli_args(net.layout, net.ports),
                *common,
                *peer_args,
            ],
            f"commit of {cc.name}",
            env=admin_env(net.layout, net.ports, first),
            timeout=60,
        )
        stamp_path.write_text(
            json.dumps({"fingerprint": fingerprint, "sequence": sequence, "package_ids": package_ids}, indent=2)
        )
        net.done(t)

    t = net.step(f"Waiting until '{cc.name}' answers on every peer")
    _parallel(lambda org: wait_chaincode_answers(net, cc, org), orgs)
    net.done(t)

    if cc.init_function and not stamp.get("initialised"):
        t = net.step(
            f"Initialising '{cc.name}' with the topology's reference data ({cc.init_function}, by the regulator)"
        )
        invoke(
            net,
            cc.name,
            net.topology.regulator,
            cc.init_function,
            [json.dumps(net.topology.reference_data())],
        )
        stamp = json.loads(stamp_path.read_text())
        stamp["initialised"] = True
        stamp_path.write_text(json.dumps(stamp, indent=2))
        net.done(t)


def wait_chaincode_answers(net: Consortium, cc: ChaincodeSpec, org: Org, timeout: float = 90) -> None:
    env = admin_env(net.layout, net.ports, org)
    args = [str(fabric_bin("peer")), "chaincode", "query", "-C", net.topology.channel, "-n", cc.name,
            "-c", json.dumps({"Args": ["org.hyperledger.fabric:GetMetadata"]})]  # fmt: skip
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            run(args, f"query {cc.name} on {org.name}", env=env, timeout=40)
            return
        except MaterialError as exc:
            last = str(exc)
            time.sleep(1)
    raise MaterialError(
        f"chaincode '{cc.name}' did not answer on {org.name}'s peer within {timeout:.0f}s: {last[-800:]}\n"
        f"chaincode server log:\n{processes.tail(net.state_dir, f'cc.{cc.name}.{org.msp_id}')}"
    )


def invoke(net: Consortium, cc_name: str, org: Org, function: str, args: list[str], orderer: str | None = None) -> str:
    """Submit through ``org``'s peer as its admin and wait for the commit; the output names the status.

    ``orderer`` picks the ordering node (default: the first one).
    """
    env = admin_env(net.layout, net.ports, org)
    env["FABRIC_LOGGING_SPEC"] = "info:grpc=error"  # the "committed with status (VALID)" line is INFO
    p = net.ports.peers[org.msp_id]
    ctor = json.dumps({"function": function, "Args": args})
    return run(
        [str(fabric_bin("peer")), "chaincode", "invoke", *orderer_cli_args(net.layout, net.ports, orderer),
         "-C", net.topology.channel, "-n", cc_name,
         "--peerAddresses", f"{HOST}:{p.listen}", "--tlsRootCertFiles", str(net.layout.tls_ca(org)),
         "-c", ctor, "--waitForEvent"],
        f"invoke {function} on {cc_name}", env=env, timeout=60,
    )  # fmt: skip


def _parallel(fn: Any, orgs: tuple[Org, ...]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(orgs)) as pool:
        for future in [pool.submit(fn, org) for org in orgs]:
            future.result()
