"""Channel configuration updates, signed by each org in its own folder.

A change to a running channel (a bank joins, an org publishes a new CRL) is a *config update*:
the difference between the channel's current config and the wanted one, which must carry
enough org admin signatures to satisfy the ``mod_policy`` of everything it changes (adding an
org to ``Application`` needs ``/Channel/Application/Admins``, a MAJORITY of the application
orgs' admins). The steps, each runnable by a different party:

1. ``propose``: anyone fetches the current config block, edits a copy and computes the update
   (``configtxlator compute_update``, Fabric's own tool for it); the update and a summary go
   into a folder that travels between the orgs;
2. ``sign``: each org's admin signs the update *in its own folder, with its own key*, and
   writes its signature next to it as a file (a ``ConfigSignature``);
3. ``submit``: once the signatures satisfy every policy the update touches (checked here,
   the same way the orderer will), one signing org sends it. Too few signatures are refused
   before anything is sent, with the number still missing and who could give them.

The JSON is configtxlator's (MSP configs decoded, certificates base64 PEM), so an operator can
read what the update does; the signatures are made over the exact ``ConfigUpdate`` bytes.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import identities_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from network.ca import issued_by
from network.material import MaterialError, run
from network.nodes import admin_env, fabric_bin, orderer_cli_args
from network.org import ADMIN, run_in

if TYPE_CHECKING:
    from network.consortium import Consortium
    from network.topology import Org

JSON = dict[str, Any]

# secp256r1's group order: Fabric accepts only low-S ECDSA signatures
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

UPDATE_FILE = "update.pb"
SUMMARY_FILE = "update.json"
SIGNATURES = "signatures"


class ConfigUpdateError(RuntimeError):
    """A config update that cannot go ahead; the message says why and what would fix it."""


# -- reading the channel's config ---------------------------------------------------


def fetch_config_block(net: Consortium, org: Org, target: Path) -> Path:
    """The channel's latest config block, fetched by ``org``'s admin from its ordering endpoint."""
    address, tls_ca = net.orderer_endpoint(org)
    target.parent.mkdir(parents=True, exist_ok=True)
    run_in(
        org,
        [str(fabric_bin("peer")), "channel", "fetch", "config", str(target), "-c", net.topology.channel,
         *orderer_cli_args(address, tls_ca)],
        f"peer channel fetch config ({org.name})", env=admin_env(net.home(org), net.ports), timeout=60,
    )  # fmt: skip
    return target


def decode(data: bytes, message_type: str, work: Path) -> JSON:
    """configtxlator's JSON for a protobuf message (e.g. ``common.Config``)."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{message_type}.in.pb"
    source.write_bytes(data)
    out = run([str(fabric_bin("configtxlator")), "proto_decode", "--input", str(source), "--type", message_type],
              f"configtxlator proto_decode {message_type}")  # fmt: skip
    decoded, _end = json.JSONDecoder().raw_decode(out[out.index("{") :])
    return dict(decoded)


def encode(document: JSON, message_type: str, work: Path) -> bytes:
    work.mkdir(parents=True, exist_ok=True)
    source, target = work / f"{message_type}.in.json", work / f"{message_type}.out.pb"
    source.write_text(json.dumps(document))
    run([str(fabric_bin("configtxlator")), "proto_encode", "--input", str(source), "--type", message_type,
         "--output", str(target)], f"configtxlator proto_encode {message_type}")  # fmt: skip
    return target.read_bytes()


def config_of_block(block_bytes: bytes) -> bytes:
    """The ``common.Config`` inside a config block."""
    block = common_pb2.Block.FromString(block_bytes)
    envelope = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(envelope.payload)
    header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    if header.type != common_pb2.CONFIG:
        raise ConfigUpdateError(f"block {block.header.number} is not a config block (type {header.type})")
    return configtx_pb2.ConfigEnvelope.FromString(payload.data).config.SerializeToString()


def current_config(net: Consortium, org: Org, work: Path) -> tuple[bytes, JSON]:
    """The channel's current config, as protobuf bytes and as configtxlator JSON."""
    block = fetch_config_block(net, org, work / "config_block.pb")
    config = config_of_block(block.read_bytes())
    return config, decode(config, "common.Config", work)


def compute_update(original: JSON, updated: JSON, channel: str, work: Path) -> bytes:
    """The ``common.ConfigUpdate`` taking ``original`` to ``updated`` (configtxlator compute_update)."""
    old, new = encode(original, "common.Config", work / "old"), encode(updated, "common.Config", work / "new")
    (work / "original.pb").write_bytes(old)
    (work / "updated.pb").write_bytes(new)
    target = work / UPDATE_FILE
    try:
        run([str(fabric_bin("configtxlator")), "compute_update", "--channel_id", channel,
             "--original", str(work / "original.pb"), "--updated", str(work / "updated.pb"),
             "--output", str(target)], "configtxlator compute_update")  # fmt: skip
    except MaterialError as exc:
        if "no differences detected" in str(exc):
            raise ConfigUpdateError("the wanted config is the channel's current config: nothing to update") from exc
        raise
    return target.read_bytes()


# -- which policies an update must satisfy ------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One policy the update must satisfy, and why (which element it modifies)."""

    policy: str  # full path, e.g. /Channel/Application/Admins
    modifies: str  # the element, e.g. /Channel/Application


def requirements(update: JSON, config: JSON) -> list[Requirement]:
    """The mod_policy of every existing element the update modifies, as the orderer checks them.

    Like Fabric's config validation: an element of the write set is modified when its version
    differs from the read set's; a new element needs no policy of its own (adding it modified
    its parent group); a modified element is checked against the mod_policy it has in the
    *current* config, resolved within the group itself for a group and within the holding group
    for a value or a policy.
    """
    found: set[Requirement] = set()

    def resolve(mod_policy: str, group_path: list[str]) -> str:
        return mod_policy if mod_policy.startswith("/") else "/" + "/".join([*group_path, mod_policy])

    def changed(write: JSON, read: JSON | None) -> bool:
        return read is None or int(write.get("version", 0)) != int(read.get("version", 0))

    def walk(write: JSON, read: JSON | None, existing: JSON | None, path: list[str]) -> None:
        if existing is None:
            return  # a new group: nothing inside it exists yet
        if changed(write, read):
            found.add(Requirement(resolve(existing.get("mod_policy", ""), path), "/" + "/".join(path)))
        for kind in ("values", "policies"):
            for key, element in (write.get(kind) or {}).items():
                prior = ((existing.get(kind)) or {}).get(key)
                if prior is not None and changed(element, ((read or {}).get(kind) or {}).get(key)):
                    found.add(Requirement(resolve(prior.get("mod_policy", ""), path), "/" + "/".join([*path, key])))
        for key, group in (write.get("groups") or {}).items():
            walk(group, ((read or {}).get("groups") or {}).get(key), (existing.get("groups") or {}).get(key),
                 [*path, key])  # fmt: skip

    walk(update["write_set"], update.get("read_set"), config["channel_group"], ["Channel"])
    return sorted(found, key=lambda r: (r.policy, r.modifies))


def _group_at(config: JSON, path: str) -> tuple[JSON, str]:
    """The group holding policy ``path`` (e.g. /Channel/Application/Admins) and the policy's name."""
    parts = path.strip("/").split("/")
    if parts[0] != "Channel":
        raise ConfigUpdateError(f"policy path {path} is outside /Channel")
    group = config["channel_group"]
    for name in parts[1:-1]:
        group = group["groups"][name]
    return group, parts[-1]


ROLE_OUS = {"ADMIN": "admin", "PEER": "peer", "CLIENT": "client", "ORDERER": "orderer", "MEMBER": None}


@dataclass
class Outcome:
    satisfied: bool
    have: set[str] = field(default_factory=set)  # MSP ids whose signatures counted
    needed: int = 0
    candidates: set[str] = field(default_factory=set)  # MSP ids that could still sign
    description: str = ""


def evaluate(config: JSON, path: str, signers: dict[str, set[str]]) -> Outcome:
    """Whether the signers (MSP id -> roles their certificates carry) satisfy the policy at ``path``."""
    group, name = _group_at(config, path)
    policy = group.get("policies", {}).get(name)
    if policy is None:
        raise ConfigUpdateError(f"the channel config has no policy {path}")
    body = policy["policy"]
    if body["type"] == 3:  # IMPLICIT_META
        rule, sub = body["value"]["rule"], body["value"]["sub_policy"]
        children = sorted(group.get("groups", {}))
        outcomes = {child: evaluate(config, f"{path.rsplit('/', 1)[0]}/{child}/{sub}", signers) for child in children}
        total = len(children)
        needed = {"ANY": 1, "ALL": total, "MAJORITY": total // 2 + 1}[rule]
        met = {child for child, o in outcomes.items() if o.satisfied}
        return Outcome(
            satisfied=len(met) >= needed,
            have={msp for child in met for msp in outcomes[child].have},
            needed=needed,
            candidates={msp for child, o in outcomes.items() if not o.satisfied for msp in o.candidates},
            description=f"{rule} of the {total} orgs' {sub} ({needed} needed)",
        )
    if body["type"] == 1:  # SIGNATURE
        value = body["value"]
        principals = [_principal(p) for p in value.get("identities", [])]
        ok, have = _rule_met(value["rule"], principals, signers)
        return Outcome(
            satisfied=ok, have=have, needed=1,
            candidates={msp for msp, _role in principals}, description=f"{path}",
        )  # fmt: skip
    raise ConfigUpdateError(f"policy {path} has a type this tool does not evaluate ({body['type']})")


def _principal(identity: JSON) -> tuple[str, str]:
    if identity.get("principal_classification", "ROLE") != "ROLE":
        raise ConfigUpdateError("only role principals are evaluated")
    principal = identity["principal"]
    return principal["msp_identifier"], principal.get("role", "MEMBER")


def _rule_met(rule: JSON, principals: list[tuple[str, str]], signers: dict[str, set[str]]) -> tuple[bool, set[str]]:
    if "signed_by" in rule:
        msp, role = principals[int(rule["signed_by"])]
        roles = signers.get(msp, set())
        wanted = ROLE_OUS.get(role)
        ok = bool(roles) and (wanted is None or wanted in roles)
        return ok, {msp} if ok else set()
    n_out_of = rule["n_out_of"]
    results = [_rule_met(r, principals, signers) for r in n_out_of.get("rules", [])]
    met = [have for ok, have in results if ok]
    return len(met) >= int(n_out_of.get("n", 0)), {msp for have in met for msp in have}


# -- signing -------------------------------------------------------------------------


def sign_update(update_dir: Path, msp_id: str, cert_file: Path, key_file: Path) -> Path:
    """The org's admin signs the update; the signature is written as ``signatures/<MSP>.sig``.

    Only the org's own certificate and key are read: this runs in the org's own folder.
    """
    update = (update_dir / UPDATE_FILE).read_bytes()
    cert_pem = cert_file.read_bytes()
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigUpdateError(f"{key_file} is not an ECDSA key")
    creator = identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem).SerializeToString()
    header = common_pb2.SignatureHeader(creator=creator, nonce=os.urandom(24)).SerializeToString()
    r, s = decode_dss_signature(key.sign(header + update, ec.ECDSA(hashes.SHA256())))
    if s > _P256_N // 2:
        s = _P256_N - s
    signature = configtx_pb2.ConfigSignature(signature_header=header, signature=encode_dss_signature(r, s))
    target = update_dir / SIGNATURES / f"{msp_id}.sig"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(signature.SerializeToString())
    tmp.replace(target)
    return target


@dataclass(frozen=True)
class Signer:
    msp_id: str
    roles: frozenset[str]
    signature: configtx_pb2.ConfigSignature
    source: Path


def _roots(config: JSON, msp_id: str) -> list[x509.Certificate]:
    """The org's root CA certificates, as the channel config (not the org's own folder) holds them."""
    groups = config["channel_group"]["groups"]
    for section in ("Application", "Orderer"):
        org = groups.get(section, {}).get("groups", {}).get(msp_id)
        if org is not None:
            msp = org["values"]["MSP"]["value"]["config"]
            return [x509.load_pem_x509_certificate(base64.b64decode(pem)) for pem in msp.get("root_certs", [])]
    raise ConfigUpdateError(f"{msp_id} is not an org of the channel")


def verified_signers(update_dir: Path, config: JSON) -> list[Signer]:
    """Every signature file that is a valid signature over this update by an org of the channel.

    A signature is checked the way the orderer will: over the exact update bytes, by a
    certificate issued by the org's root CA as the channel config holds it. A file that fails
    is refused with its name, so a tampered or stale signature never counts silently.
    """
    update = (update_dir / UPDATE_FILE).read_bytes()
    signers: list[Signer] = []
    seen: set[str] = set()
    for path in sorted((update_dir / SIGNATURES).glob("*.sig")):
        try:
            signature = configtx_pb2.ConfigSignature.FromString(path.read_bytes())
            header = common_pb2.SignatureHeader.FromString(signature.signature_header)
            creator = identities_pb2.SerializedIdentity.FromString(header.creator)
            cert = x509.load_pem_x509_certificate(creator.id_bytes)
        except (DecodeError, ValueError) as exc:
            raise ConfigUpdateError(f"{path}: not a config signature ({exc.__class__.__name__})") from exc
        msp_id = creator.mspid
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ConfigUpdateError(f"{path}: the signer's certificate does not hold an ECDSA key")
        try:
            public_key.verify(signature.signature, signature.signature_header + update, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise ConfigUpdateError(f"{path}: the signature of {msp_id} does not match this update") from exc
        if not any(issued_by(cert, root) for root in _roots(config, msp_id)):
            raise ConfigUpdateError(f"{path}: the certificate is not issued by {msp_id}'s CA in the channel config")
        if msp_id in seen:
            continue  # Fabric counts one signature per identity; a second file adds nothing
        seen.add(msp_id)
        ous = {a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)}
        signers.append(Signer(msp_id, frozenset(str(ou) for ou in ous), signature, path))
    return signers


def check_signatures(update_dir: Path, config: JSON) -> tuple[list[Signer], list[str]]:
    """The valid signers, and one line per policy the update touches that they do not satisfy yet."""
    summary = json.loads((update_dir / SUMMARY_FILE).read_text())
    signers = verified_signers(update_dir, config)
    roles = {s.msp_id: set(s.roles) for s in signers}
    problems: list[str] = []
    for item in summary["requirements"]:
        outcome = evaluate(config, item["policy"], roles)
        if outcome.satisfied:
            continue
        missing = outcome.needed - len({s for s in outcome.have})
        could = sorted(outcome.candidates - set(roles))
        problems.append(
            f"{item['policy']} ({outcome.description}, to modify {item['modifies']}): "
            f"has {len(outcome.have)} ({', '.join(sorted(outcome.have)) or 'none'}), "
            f"{missing} more signature{'s' if missing != 1 else ''} missing"
            + (f" from any of {', '.join(could)}" if could else "")
        )
    return signers, problems


# -- proposing and submitting ----------------------------------------------------------


def propose(
    update_dir: Path, original_bytes: bytes, original: JSON, updated: JSON, channel: str, description: str
) -> JSON:
    """Compute the update into ``update_dir`` (fresh), with a readable summary of what it needs."""
    if update_dir.exists():
        shutil.rmtree(update_dir)
    update_dir.mkdir(parents=True)
    work = update_dir / "work"
    update_bytes = compute_update(original, updated, channel, work)
    (update_dir / UPDATE_FILE).write_bytes(update_bytes)
    (update_dir / "base_config.pb").write_bytes(original_bytes)
    decoded = decode(update_bytes, "common.ConfigUpdate", work)
    summary = {
        "channel": channel,
        "description": description,
        "proposed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "requirements": [{"policy": r.policy, "modifies": r.modifies} for r in requirements(decoded, original)],
        "update": decoded,
    }
    (update_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    shutil.rmtree(work)
    return summary


def envelope(update_dir: Path, signers: Iterable[Signer], channel: str) -> bytes:
    """A CONFIG_UPDATE envelope carrying the update and the collected signatures."""
    update = (update_dir / UPDATE_FILE).read_bytes()
    now = time.time()
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.CONFIG_UPDATE, version=0, channel_id=channel,
        timestamp=timestamp_pb2.Timestamp(seconds=int(now), nanos=int((now % 1) * 1e9)),
    )  # fmt: skip
    config_update_envelope = configtx_pb2.ConfigUpdateEnvelope(
        config_update=update, signatures=[s.signature for s in signers]
    )
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=channel_header.SerializeToString()),
        data=config_update_envelope.SerializeToString(),
    )
    return common_pb2.Envelope(payload=payload.SerializeToString()).SerializeToString()


def submit(net: Consortium, update_dir: Path, submitter: Org, force: bool = False) -> list[Signer]:
    """Send the update once its signatures satisfy every policy it touches; refuse before sending otherwise.

    ``force`` sends it anyway (to see the orderer's own refusal); the submitter's admin then
    signs too, as ``peer channel update`` always does.
    """
    summary = json.loads((update_dir / SUMMARY_FILE).read_text())
    channel = summary["channel"]
    base = (update_dir / "base_config.pb").read_bytes()
    work = update_dir / "submit"
    config = decode(base, "common.Config", work)
    # the update was computed against one config; if the channel moved on since, it no longer applies
    now_bytes, _now = current_config(net, submitter, work / "now")
    if now_bytes != base:
        raise ConfigUpdateError(
            "the channel's config changed since this update was proposed: propose it again and collect new signatures"
        )
    signers, problems = check_signatures(update_dir, config)
    if problems and not force:
        raise ConfigUpdateError(
            "not enough admin signatures to submit this update:\n  " + "\n  ".join(problems)
        )
    if submitter.msp_id not in {s.msp_id for s in signers} and not force:
        raise ConfigUpdateError(f"{submitter.msp_id} submits, so it must sign the update too")
    target = work / "envelope.pb"
    target.write_bytes(envelope(update_dir, signers, channel))
    address, tls_ca = net.orderer_endpoint(submitter)
    try:
        run_in(
            submitter,
            [str(fabric_bin("peer")), "channel", "update", "-f", str(target), "-c", channel,
             *orderer_cli_args(address, tls_ca)],
            f"peer channel update ({submitter.name})", env=admin_env(net.home(submitter), net.ports), timeout=60,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return signers


def sign_as_org(net: Consortium, update_dir: Path, org: Org) -> Path:
    """``org``'s admin signs, with its own certificate and key from its own folder."""
    home = net.home(org)
    return sign_update(update_dir, org.msp_id, home.user_cert(ADMIN), home.user_key(ADMIN))


def edited(config: JSON) -> JSON:
    """A deep copy to edit into the wanted config."""
    return copy.deepcopy(config)
