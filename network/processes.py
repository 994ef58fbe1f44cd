"""Native processes: start with a pid file and a log file, health-check, stop.

Every node (orderer, peer, chaincode server, REST gateway) is described by a
:class:`NodeSpec` saved in ``<state>/nodes.json``, so any single node can be stopped and
started again later (the tests kill and restart peers and chaincode servers this way).
A pid file holds the pid and the process start time, so a recycled pid is never
mistaken for one of ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class NodeSpec:
    name: str  # unique within the network, e.g. "orderer1", "peer.USBankMSP", "cc.deposit_token.USBankMSP"
    kind: str  # orderer | peer | chaincode | gateway
    command: list[str]
    env: dict[str, str]
    cwd: str
    health_url: str | None = None  # HTTP URL answering 200 when the node is up
    tcp_port: int | None = None  # for nodes without an HTTP health endpoint
    ports: list[int] = field(default_factory=list)
    host: str = "127.0.0.1"  # the address the node listens on (its org's host)


class NodeError(RuntimeError):
    pass


def netns_prefix(netns: str | None) -> list[str]:
    """The command prefix that runs a program inside a network namespace (none: this host's own)."""
    return ["ip", "netns", "exec", netns] if netns else []


def save_specs(state_dir: Path, specs: Iterable[NodeSpec]) -> None:
    existing = {s.name: s for s in load_specs(state_dir)}
    for spec in specs:
        existing[spec.name] = spec
    path = state_dir / "nodes.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(s) for s in existing.values()], indent=2))
    tmp.replace(path)


def load_specs(state_dir: Path) -> list[NodeSpec]:
    path = state_dir / "nodes.json"
    if not path.exists():
        return []
    return [NodeSpec(**raw) for raw in json.loads(path.read_text())]


def pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.pid"


def log_file(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces; fields after the closing parenthesis are fixed
    return stat.rsplit(")", 1)[1].split()[19]


def running_pid(state_dir: Path, name: str) -> int | None:
    """The pid of our node ``name`` if it is alive, else None."""
    path = pid_file(state_dir, name)
    try:
        pid_text, started = path.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if _start_time(pid) != started:
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if state == "Z" else pid


def start(state_dir: Path, spec: NodeSpec) -> int:
    if (pid := running_pid(state_dir, spec.name)) is not None:
        return pid
    log = log_file(state_dir, spec.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file(state_dir, spec.name).parent.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    for passthrough in ("LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV"):
        if passthrough in os.environ:
            env[passthrough] = os.environ[passthrough]
    env.update(spec.env)
    with open(log, "ab") as out:
        out.write(f"\n=== starting {spec.name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
        out.flush()
        proc = subprocess.Popen(
            spec.command,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal must not take the network down
        )
    started = None
    for _ in range(50):
        started = _start_time(proc.pid)
        if started:
            break
        time.sleep(0.01)
    pid_file(state_dir, spec.name).write_text(f"{proc.pid} {started}\n")
    return proc.pid


def stop(state_dir: Path, name: str, timeout: float = 15.0, sig: int = signal.SIGTERM) -> bool:
    """Stop our node ``name``; returns True if it was running."""
    pid = running_pid(state_dir, name)
    if pid is None:
        pid_file(state_dir, name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(state_dir, name) is None:
            break
        _reap(pid)
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while running_pid(state_dir, name) is not None:
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    pid_file(state_dir, name).unlink(missing_ok=True)
    return True


def rename(state_dir: Path, name: str, new_name: str) -> NodeSpec | None:
    """Carry on tracking the running node ``name`` as ``new_name`` (its spec and pid file move).

    A chaincode upgrade starts the new version's server under the usual name while the old one,
    renamed, keeps serving until the new definition is committed.
    """
    specs = {spec.name: spec for spec in load_specs(state_dir)}
    spec = specs.get(name)
    if spec is None:
        return None
    renamed = NodeSpec(**{**asdict(spec), "name": new_name})
    save_specs(state_dir, [renamed])
    if pid_file(state_dir, name).exists():
        pid_file(state_dir, name).replace(pid_file(state_dir, new_name))
    return renamed


def forget(state_dir: Path, name: str) -> None:
    """Drop ``name``'s spec (a node that is gone for good)."""
    remaining = [spec for spec in load_specs(state_dir) if spec.name != name]
    path = state_dir / "nodes.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(s) for s in remaining], indent=2))
    tmp.replace(path)


def _reap(pid: int) -> None:
    # a node started by this very process is our child: collect it so it does not linger as a zombie
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def healthy(spec: NodeSpec, timeout: float = 1.0) -> bool:
    if spec.health_url:
        try:
            with urllib.request.urlopen(spec.health_url, timeout=timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False
    if spec.tcp_port:
        import socket

        try:
            with socket.create_connection((spec.host, spec.tcp_port), timeout=timeout):
                return True
        except OSError:
            return False
    return True


def wait_healthy(
    state_dir: Path,
    specs: list[NodeSpec],
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> None:
    pending = {s.name: s for s in specs}
    deadline = time.monotonic() + timeout
    while pending:
        for name, spec in list(pending.items()):
            if running_pid(state_dir, name) is None:
                raise NodeError(f"{name} exited during start-up; last lines of its log:\n{tail(state_dir, name)}")
            if healthy(spec):
                del pending[name]
                if progress:
                    progress(f"{name} is healthy")
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(sorted(pending))
            first = next(iter(pending))
            raise NodeError(
                f"timed out after {timeout:.0f}s waiting for {names}; {first} log:\n{tail(state_dir, first)}"
            )
        time.sleep(0.2)


def tail(state_dir: Path, name: str, lines: int = 15) -> str:
    try:
        content = log_file(state_dir, name).read_text(errors="replace").splitlines()
    except OSError:
        return "  (no log)"
    return "\n".join("  " + line for line in content[-lines:])


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
