"""Each organisation's own Fabric CAs: a TLS CA and a signing (enrollment) CA.

Fabric's deployment guide recommends two CAs per organisation: the TLS CA issues every TLS
certificate of the org (its nodes' server certificates, its clients' mutual-TLS certificates,
and the signing CA's own server certificate), and the signing CA issues the enrollment
certificates that go into the MSPs. Keeping them apart means a leaked TLS key never signs a
transaction and the channel MSP's ``tlscacerts`` differ from its ``cacerts``
(docs/decisions/0012-fabric-ca-per-org.md).

Everything runs ``fabric-ca-server`` and ``fabric-ca-client`` (v1.5.15, built with cgo for the
sqlite store by ``network/install-fabric.sh``) as subprocesses. Secrets never appear on a
command line (``/proc/<pid>/cmdline`` is world-readable): they are passed in the environment,
and are stored 0600 in the CA's home.

Files produced (``out_dir`` is the caller's):

    <out_dir>/msp/signcerts/cert.pem, keystore/priv_sk, cacerts/ca.pem, tlscacerts/ca.pem, config.yaml
    <out_dir>/tls/server.crt, server.key, ca.crt          (nodes; chaincode TLS: directly in out_dir)
    <out_dir>/tls/client.crt, client.key, ca.crt          (users enrolled with tls=True)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from network import processes
from network.binaries import fabric_bin

ROLES = ("tls", "sign")
NODE_TYPES = ("peer", "orderer")
USER_TYPES = ("admin", "client")
# The OU the CA forces into each enrollment certificate; NodeOUs classify identities by it.
OU_TYPES = ("client", "peer", "admin", "orderer")
KEY_FILE = "priv_sk"
CA_FILE = "ca.pem"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_CLIENT_TIMEOUT = 60.0
# fabric-ca puts the ecert attributes in this extension, as JSON {"attrs": {...}}
ATTRS_OID = "1.2.3.4.5.6.7.8.1"


class CAError(RuntimeError):
    """A CA command failed; the message names the CA, the command and its last output lines."""


@dataclass(frozen=True)
class CASpec:
    """One Fabric CA server of one org."""

    org: str  # org name, e.g. "USBank"
    role: str  # "tls" or "sign"
    name: str  # the CA's name (--caname), also the CN of its root, e.g. "tlsca.usbank" / "ca.usbank"
    home: Path  # server home (sqlite db, keys, config), inside the org's own folder
    host: str  # IP address it binds to and that clients dial (a loopback address here)
    port: int
    operations_port: int
    dns_names: tuple[str, ...] = ()  # extra SANs of its TLS server certificate
    netns: str | None = None  # the network namespace standing in for the org's host, if any

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"CA role must be one of {ROLES}, not {self.role!r}")

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def node_name(self) -> str:
        """The process name under which network.processes tracks it (pid file, log)."""
        return f"ca.{self.role}.{self.org}"

    @property
    def root_cert(self) -> Path:
        """The self-signed root written by ``fabric-ca-server init``."""
        return self.home / "ca-cert.pem"

    @property
    def tls_hosts(self) -> list[str]:
        return [self.host, *self.dns_names]


def server_env(spec: CASpec, tls_cert: Path, tls_key: Path | None) -> dict[str, str]:
    """The server's settings, as environment overrides of its config file.

    ``init`` does not persist ``csr.hosts`` and the operations address defaults to
    127.0.0.1:9443 (the peers' default too), so every setting is passed on every start.
    ``tls_key`` None means the TLS CA's self-issued server certificate, whose key the server
    keeps in its own BCCSP keystore (it generates both at the first start from ``csr.hosts``).
    """
    env = {
        "FABRIC_CA_SERVER_HOME": str(spec.home),
        "FABRIC_CA_SERVER_CA_NAME": spec.name,
        "FABRIC_CA_SERVER_CSR_CN": spec.name,
        "FABRIC_CA_SERVER_CSR_HOSTS": ",".join(spec.tls_hosts),
        "FABRIC_CA_SERVER_ADDRESS": spec.host,
        "FABRIC_CA_SERVER_PORT": str(spec.port),
        "FABRIC_CA_SERVER_TLS_ENABLED": "true",
        "FABRIC_CA_SERVER_TLS_CERTFILE": str(tls_cert),
        "FABRIC_CA_SERVER_OPERATIONS_LISTENADDRESS": f"{spec.host}:{spec.operations_port}",
        "FABRIC_CA_SERVER_OPERATIONS_TLS_ENABLED": "false",
        "FABRIC_CA_SERVER_METRICS_PROVIDER": "disabled",
    }
    if tls_key is not None:
        env["FABRIC_CA_SERVER_TLS_KEYFILE"] = str(tls_key)
    return env


def server_node_spec(spec: CASpec, tls_cert: Path, tls_key: Path | None) -> processes.NodeSpec:
    """How network.processes starts and health-checks this CA (kind "ca", /healthz on operations)."""
    return processes.NodeSpec(
        name=spec.node_name,
        kind="ca",
        command=[
            *processes.netns_prefix(spec.netns), str(fabric_bin("fabric-ca-server")), "start", "-H", str(spec.home)
        ],
        env=server_env(spec, tls_cert, tls_key),
        cwd=str(spec.home),
        health_url=f"http://{spec.host}:{spec.operations_port}/healthz",
        ports=[spec.port, spec.operations_port],
        host=spec.host,
    )


def node_ous_config(ca_file: str = f"cacerts/{CA_FILE}") -> str:
    """An MSP ``config.yaml`` enabling NodeOUs, every OU identifier pinned to the org's signing root.

    The file name is fixed (``cacerts/ca.pem``) rather than the one fabric-ca-client derives from
    the enroll URL, which would silently miss when the CA is dialled under another name.
    """
    lines = ["NodeOUs:", "  Enable: true"]
    for ou in OU_TYPES:
        lines += [
            f"  {ou.capitalize()}OUIdentifier:",
            f"    Certificate: {ca_file}",
            f"    OrganizationalUnitIdentifier: {ou}",
        ]
    return "\n".join(lines) + "\n"


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write atomically (a reader never sees half a key) with the given permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``cert`` and names it as issuer (names alone prove nothing)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def _key_matches(cert: x509.Certificate, key_path: Path) -> bool:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt))


def credential_ok(
    cert_path: Path, key_path: Path, root: Path, ou: str | None = None, hosts: Iterable[str] = ()
) -> bool:
    """Whether an enrolled cert/key pair is still good: lets a repeated call skip re-enrolling."""
    try:
        cert = _load_cert(cert_path)
        issuer = _load_cert(root)
    except (OSError, ValueError):
        return False
    if not issued_by(cert, issuer) or not _key_matches(cert, key_path):
        return False
    if ou is not None and ou not in [
        a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    ]:
        return False
    return set(hosts) <= _sans(cert)


def _is_tls_cert(cert_path: Path) -> bool:
    try:
        eku = _load_cert(cert_path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.SERVER_AUTH in eku


class OrgCAs:
    """Both CAs of one org, living under the org's own folder.

    Methods are safe to call from several threads at once (different identities): the CA's
    sqlite store serialises its writes, and every enrollment uses its own client home.
    """

    def __init__(
        self,
        tls: CASpec,
        sign: CASpec,
        org_home: Path,
        progress: Callable[[str], None] = print,
        state_dir: Path | None = None,
    ) -> None:
        if tls.role != "tls" or sign.role != "sign":
            raise ValueError("OrgCAs needs a 'tls' CASpec and a 'sign' CASpec")
        if tls.org != sign.org:
            raise ValueError(f"the TLS CA ({tls.org}) and the signing CA ({sign.org}) must belong to one org")
        self.tls = tls
        self.sign = sign
        self.org = tls.org
        self.org_home = org_home
        self.progress = progress
        # pid files and logs (network.processes); the network tool passes its own state folder
        self.state_dir = state_dir if state_dir is not None else org_home
        self._lock = threading.Lock()

    # ---- servers -------------------------------------------------------------------------

    @property
    def tls_root_cert(self) -> Path:
        """The TLS CA's root (PEM): what every TLS client and server of this org trusts."""
        return self.tls.root_cert

    @property
    def sign_root_cert(self) -> Path:
        """The signing CA's root (PEM): the org's MSP ``cacerts``."""
        return self.sign.root_cert

    def _server_tls(self, spec: CASpec) -> tuple[Path, Path | None]:
        if spec.role == "tls":
            return spec.home / "tls-cert.pem", None  # self-issued at first start, key in its BCCSP store
        return spec.home / "tls" / "server.crt", spec.home / "tls" / "server.key"

    def node_specs(self) -> list[processes.NodeSpec]:
        """Both servers as NodeSpecs, TLS CA first (for the network tool's nodes.json)."""
        return [server_node_spec(s, *self._server_tls(s)) for s in (self.tls, self.sign)]

    def start(self) -> None:
        """Initialise (first time only) and start both CAs, the TLS CA first; idempotent.

        The signing CA's server certificate is enrolled from the TLS CA, so the TLS CA must be
        up before the signing CA can even start.
        """
        self._start_one(self.tls)
        cert, key = self._server_tls(self.sign)
        assert key is not None
        if not credential_ok(cert, key, self.tls_root_cert, hosts=self.sign.tls_hosts):
            self.progress(f"[ca] {self.sign.name}: server TLS certificate from {self.tls.name}")
            self._tls_enroll(self.sign.name, "client", self.sign.tls_hosts, cert, key)
        self._start_one(self.sign)

    def stop(self) -> None:
        """Stop both servers (signing CA first); their data stays for the next start."""
        for spec in (self.sign, self.tls):
            if processes.stop(self.state_dir, spec.node_name):
                self.progress(f"[ca] {spec.node_name} stopped")

    def pids(self) -> dict[str, int | None]:
        return {s.node_name: processes.running_pid(self.state_dir, s.node_name) for s in (self.tls, self.sign)}

    def _start_one(self, spec: CASpec) -> None:
        spec.home.mkdir(parents=True, exist_ok=True)
        spec.home.chmod(0o700)
        cert, key = self._server_tls(spec)
        node = server_node_spec(spec, cert, key)
        if processes.running_pid(self.state_dir, node.name) is None:
            if not spec.root_cert.exists():
                self._init(spec, node)
            if spec.role == "tls" and cert.exists() and not set(spec.tls_hosts) <= _sans(_load_cert(cert)):
                cert.unlink()  # hosts changed: the server issues a new one from csr.hosts at start
            self.progress(f"[ca] starting {node.name} ({spec.name}) on {spec.url}")
            processes.start(self.state_dir, node)
        try:
            processes.wait_healthy(self.state_dir, [node], timeout=30)
        except processes.NodeError as exc:
            raise CAError(f"CA {spec.name} ({node.name}) did not become healthy: {exc}") from exc
        self._enroll_registrar(spec)

    def _init(self, spec: CASpec, node: processes.NodeSpec) -> None:
        """``fabric-ca-server init``: root key and self-signed cert, sqlite db, bootstrap admin."""
        password = self._secret(spec, "bootstrap", create=True)
        env = {**node.env, "FABRIC_CA_SERVER_BOOT": f"admin:{password}"}
        self.progress(f"[ca] initialising {spec.name} in {spec.home}")
        self._run(spec, [str(fabric_bin("fabric-ca-server")), "init", "-H", str(spec.home)], env)
        # init writes the bootstrap password in clear into the config file
        (spec.home / "fabric-ca-server-config.yaml").chmod(0o600)

    def _registrar_msp(self, spec: CASpec) -> Path:
        return spec.home / "registrar" / "msp"

    def _enroll_registrar(self, spec: CASpec) -> None:
        msp = self._registrar_msp(spec)
        if credential_ok(msp / "signcerts" / "cert.pem", self._only_key(msp / "keystore"), spec.root_cert):
            return
        password = self._secret(spec, "bootstrap")
        shutil.rmtree(msp, ignore_errors=True)
        self._client(spec, ["enroll", "-M", str(msp)], msp.parent, user=("admin", password))

    # ---- secrets -------------------------------------------------------------------------

    def _secret(self, spec: CASpec, name: str, create: bool = False) -> str:
        """The identity's enrollment secret, stored 0600 in the CA home, made on first use."""
        path = spec.home / "secrets" / f"{name}.secret"
        with self._lock:
            if path.exists():
                return path.read_text().strip()
            if not create:
                raise CAError(f"CA {spec.name}: no stored secret for '{name}' in {path.parent}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            value = secrets.token_urlsafe(24)
            _write(path, value.encode() + b"\n", 0o600)
            return value

    # ---- running the binaries ------------------------------------------------------------

    def _run(self, spec: CASpec, command: list[str], env: dict[str, str]) -> str:
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}
        try:
            result = subprocess.run(
                command, env=full_env, capture_output=True, text=True, timeout=_CLIENT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise CAError(f"CA {spec.name}: '{' '.join(command)}' timed out after {_CLIENT_TIMEOUT:.0f}s") from exc
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            last = "\n".join("  " + line for line in output[-8:])
            raise CAError(f"CA {spec.name} ({spec.url}): '{' '.join(command)}' failed ({result.returncode}):\n{last}")
        return result.stdout + result.stderr

    def _client(
        self,
        spec: CASpec,
        args: list[str],
        client_home: Path,
        user: tuple[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> str:
        """Run fabric-ca-client against ``spec``; the enroll credentials go in the environment."""
        client_home.mkdir(parents=True, exist_ok=True)
        url = spec.url
        if user is not None:
            url = f"https://{user[0]}:{user[1]}@{spec.host}:{spec.port}"
        env = {"FABRIC_CA_CLIENT_HOME": str(client_home), "FABRIC_CA_CLIENT_URL": url, **(extra_env or {})}
        command = [
            str(fabric_bin("fabric-ca-client")),
            *args,
            "--caname",
            spec.name,
            "--tls.certfiles",
            str(self.tls_root_cert),
        ]
        return self._run(spec, command, env)

    def _register(self, spec: CASpec, name: str, id_type: str, attrs: dict[str, str] | None = None) -> str:
        """Register ``name`` (idempotent: an identity already registered is fine); returns its secret.

        The secret is stored before registering, so a run cut short in between still knows it.
        """
        if not _NAME.match(name):
            raise ValueError(f"identity name {name!r} must match {_NAME.pattern}")
        secret = self._secret(spec, name, create=True)
        args = ["register", "-M", str(self._registrar_msp(spec)), "--id.name", name, "--id.type", id_type]
        for key, value in (attrs or {}).items():
            if "," in value or "=" in key or ":" in value:
                raise ValueError(f"attribute {key}={value!r}: ',' ':' and '=' are not allowed")
            args += ["--id.attrs", f"{key}={value}:ecert"]
        home = self._registrar_msp(spec).parent
        try:
            # the new identity's secret, like every password, stays off the command line
            self._client(spec, args, home, extra_env={"FABRIC_CA_CLIENT_ID_SECRET": secret})
        except CAError as exc:
            if "is already registered" not in str(exc):
                raise
        return secret

    def _enroll_into(self, spec: CASpec, name: str, secret: str, extra: list[str]) -> tuple[bytes, bytes]:
        """Enroll into a scratch folder; returns (cert PEM, key PEM). Each call has its own client home."""
        work = spec.home / "work"
        work.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=work, prefix=f"{name}."))
        try:
            msp = scratch / "msp"
            self._client(spec, ["enroll", "-M", str(msp), *extra], scratch, user=(name, secret))
            cert = (msp / "signcerts" / "cert.pem").read_bytes()
            return cert, self._only_key(msp / "keystore").read_bytes()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @staticmethod
    def _only_key(keystore: Path) -> Path:
        keys = sorted(keystore.glob("*_sk")) if keystore.is_dir() else []
        return keys[-1] if len(keys) == 1 else keystore / KEY_FILE

    def _tls_enroll(self, name: str, id_type: str, hosts: list[str], cert_path: Path, key_path: Path) -> None:
        secret = self._register(self.tls, name, id_type)
        extra = ["--enrollment.profile", "tls"]
        if hosts:
            extra += ["--csr.hosts", ",".join(hosts)]
        cert, key = self._enroll_into(self.tls, name, secret, extra)
        _write(key_path, key, 0o600)
        _write(cert_path, cert)
        _write(cert_path.parent / "ca.crt", self.tls_root_cert.read_bytes())

    # ---- identities ----------------------------------------------------------------------

    def _sign_enroll(self, name: str, id_type: str, msp: Path, attrs: dict[str, str] | None = None) -> None:
        secret = self._register(self.sign, name, id_type, attrs)
        cert, key = self._enroll_into(self.sign, name, secret, [])
        for stale in (msp / "keystore").glob("*") if (msp / "keystore").is_dir() else []:
            if stale.name != KEY_FILE:
                stale.unlink()
        _write(msp / "keystore" / KEY_FILE, key, 0o600)
        _write(msp / "signcerts" / "cert.pem", cert)
        self._write_public_msp(msp)

    def _write_public_msp(self, msp: Path) -> None:
        _write(msp / "cacerts" / CA_FILE, self.sign_root_cert.read_bytes())
        _write(msp / "tlscacerts" / CA_FILE, self.tls_root_cert.read_bytes())
        _write(msp / "config.yaml", node_ous_config().encode())

    def _msp_ok(self, msp: Path, ou: str) -> bool:
        return credential_ok(msp / "signcerts" / "cert.pem", msp / "keystore" / KEY_FILE, self.sign_root_cert, ou=ou)

    def _tls_ok(self, cert: Path, key: Path, hosts: Iterable[str]) -> bool:
        return credential_ok(cert, key, self.tls_root_cert, hosts=hosts) and _is_tls_cert(cert)

    def enroll_node(self, name: str, node_type: str, hosts: list[str], out_dir: Path, force: bool = False) -> None:
        """A peer or orderer: its local MSP (``out_dir/msp``) and TLS server identity (``out_dir/tls``).

        Registers at both CAs and enrolls at both in parallel. A repeated call keeps credentials
        that are still good (issued by this org's roots, right OU, SANs cover ``hosts``) unless
        ``force``; it rewrites the public files either way.
        """
        if node_type not in NODE_TYPES:
            raise ValueError(f"node_type must be one of {NODE_TYPES}, not {node_type!r}")
        msp, tls = out_dir / "msp", out_dir / "tls"
        jobs: list[Callable[[], None]] = []
        if force or not self._msp_ok(msp, node_type):
            jobs.append(lambda: self._sign_enroll(name, node_type, msp))
        if force or not self._tls_ok(tls / "server.crt", tls / "server.key", hosts):
            jobs.append(lambda: self._tls_enroll(name, node_type, hosts, tls / "server.crt", tls / "server.key"))
        run_parallel(jobs)
        self._write_public_msp(msp)
        _write(tls / "ca.crt", self.tls_root_cert.read_bytes())

    def enroll_user(
        self,
        name: str,
        user_type: str,
        out_dir: Path,
        attrs: dict[str, str] | None = None,
        tls: bool = False,
        force: bool = False,
    ) -> None:
        """An admin or client user: ``out_dir/msp``; with ``tls`` also a mutual-TLS client identity.

        ``attrs`` become ecert attributes (``k=v:ecert``), which chaincode reads through the
        client identity. Attributes are fixed at registration: changing them needs a new name.
        """
        if user_type not in USER_TYPES:
            raise ValueError(f"user_type must be one of {USER_TYPES}, not {user_type!r}")
        msp, tls_dir = out_dir / "msp", out_dir / "tls"
        jobs: list[Callable[[], None]] = []
        if force or not self._msp_ok(msp, user_type) or not _has_attrs(msp / "signcerts" / "cert.pem", attrs):
            jobs.append(lambda: self._sign_enroll(name, user_type, msp, attrs))
        if tls and (force or not self._tls_ok(tls_dir / "client.crt", tls_dir / "client.key", ())):
            jobs.append(lambda: self._tls_enroll(name, user_type, [], tls_dir / "client.crt", tls_dir / "client.key"))
        run_parallel(jobs)
        self._write_public_msp(msp)

    def enroll_tls_only(self, name: str, hosts: list[str], out_dir: Path, force: bool = False) -> None:
        """A TLS server identity only (the org's chaincode servers): server.crt, server.key, ca.crt."""
        if force or not self._tls_ok(out_dir / "server.crt", out_dir / "server.key", hosts):
            self._tls_enroll(name, "client", hosts, out_dir / "server.crt", out_dir / "server.key")
        _write(out_dir / "ca.crt", self.tls_root_cert.read_bytes())

    def renew_tls(self, name: str, node_type: str, hosts: list[str], out_dir: Path) -> None:
        """A new TLS server key and certificate for a node (``out_dir/tls``), its signing identity kept."""
        if node_type not in NODE_TYPES:
            raise ValueError(f"node_type must be one of {NODE_TYPES}, not {node_type!r}")
        tls = out_dir / "tls"
        self._tls_enroll(name, node_type, hosts, tls / "server.crt", tls / "server.key")

    def revoke(self, cert_path: Path, reason: str = "keycompromise") -> bytes:
        """Revoke one certificate of the signing CA (by serial and key id) and return the CA's new CRL (PEM).

        Only that certificate is revoked, not the identity: the same user may enroll again.
        """
        cert = _load_cert(cert_path)
        if not issued_by(cert, _load_cert(self.sign_root_cert)):
            raise CAError(f"{cert_path} was not issued by {self.sign.name}: it cannot revoke it")
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        if aki is None:
            raise CAError(f"{cert_path} has no authority key identifier")
        msp = self._registrar_msp(self.sign)
        self._client(
            self.sign,
            ["revoke", "-M", str(msp), "-s", format(cert.serial_number, "x"), "-a", aki.hex(), "-r", reason,
             "--gencrl"],
            msp.parent,
        )  # fmt: skip
        return (msp / "crls" / "crl.pem").read_bytes()

    def write_channel_msp(self, out_dir: Path) -> None:
        """The org's public channel MSP (configtx ``MSPDir``): both roots and config.yaml, no keys."""
        self._write_public_msp(out_dir)


def _has_attrs(cert_path: Path, attrs: dict[str, str] | None) -> bool:
    if not attrs:
        return True
    try:
        ext = _load_cert(cert_path).extensions.get_extension_for_oid(x509.ObjectIdentifier(ATTRS_OID)).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    assert isinstance(ext, x509.UnrecognizedExtension)
    present = json.loads(ext.value).get("attrs", {})
    return all(present.get(k) == v for k, v in attrs.items())


def run_parallel(jobs: list[Callable[[], None]], max_workers: int = 4) -> None:
    """Run independent enrollments at once; the first failure is raised after all have ended."""
    if len(jobs) <= 1:
        for job in jobs:
            job()
        return
    with ThreadPoolExecutor(max_workers=min(max_workers, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
    for future in futures:
        future.result()


def rss_kib(cas: OrgCAs) -> dict[str, int]:
    """Resident memory of each running CA server (VmRSS), for status output and sizing."""
    return {name: processes.rss_kib(pid) for name, pid in cas.pids().items() if pid is not None}
