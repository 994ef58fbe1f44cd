"""Build the fabric-sdk-py (hfc) virtual environment, once: ``python compat/hfc/venv.py [--venv DIR]``.

hfc cannot live in the project's environment: it registers the same ``protos.*`` protobuf files
as hyperledger-fabric-protos (one process cannot import both) and needs protobuf 3.20, where
the project needs protobuf 5. So it gets a virtual environment of its own (default
``.venv-hfc``), installed from compat/hfc/requirements.txt with ``--no-deps``.

A stamp in the environment records the requirements and the interpreter it was built from;
while both are unchanged a second run only checks the stamp. Prints the environment's python
on stdout. Exit status 3: no Python between 3.8 and 3.11 to build it with.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REQUIREMENTS = HERE / "requirements.txt"
DEFAULT_VENV = ROOT / ".venv-hfc"
STAMP = ".hfc-installed"
NO_INTERPRETER = 3
# hfc imports the private module _sha256, which Python 3.12 removed
SUPPORTED = ((3, 8), (3, 12))


def say(message: str) -> None:
    print(f"[hfc-venv] {message}", file=sys.stderr, flush=True)


def interpreter_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor = out.split()
    return int(major), int(minor)


def find_interpreter(requested: str | None) -> str | None:
    """The given interpreter, else this one, else python3.11 on the PATH: the first that hfc runs on."""
    candidates = [requested] if requested else [os.environ.get("HFC_PYTHON"), sys.executable, "python3.11"]
    for candidate in candidates:
        if not candidate:
            continue
        found = shutil.which(candidate) or candidate
        version = interpreter_version(found)
        if version is not None and SUPPORTED[0] <= version < SUPPORTED[1]:
            return found
    return None


def fingerprint(python: str) -> str:
    """What the environment was built from: the requirements and the interpreter's exact version."""
    exact = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    return hashlib.sha256(REQUIREMENTS.read_bytes() + exact.encode()).hexdigest()


def build(venv: Path, python: str) -> None:
    started = time.monotonic()
    say(f"building {venv} with {python} (first time: under a minute)")
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "install", "--quiet", "--progress-bar", "off", "--no-deps", "-r", str(REQUIREMENTS)],
                   check=True)  # fmt: skip
    # fails here, not in the application, when a package the list lacks is imported
    subprocess.run([str(venv / "bin" / "python"), "-c", "import hfc.fabric, hfc.fabric_ca.caservice"], check=True)
    say(f"ready in {time.monotonic() - started:.1f}s")


def ensure(venv: Path, python: str) -> Path:
    venv.parent.mkdir(parents=True, exist_ok=True)
    # two runs at once (make hfc-check while a test session builds) wait for each other
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = venv / STAMP
        wanted = fingerprint(python)
        if stamp.exists() and stamp.read_text() == wanted and (venv / "bin" / "python").exists():
            say(f"{venv} is up to date")
        else:
            stamp.unlink(missing_ok=True)
            build(venv, python)
            stamp.write_text(wanted)
    return venv / "bin" / "python"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="where (default: .venv-hfc)")
    parser.add_argument("--python", help="the interpreter to build it with (default: this one, else python3.11)")
    args = parser.parse_args()
    python = find_interpreter(args.python)
    if python is None:
        say("fabric-sdk-py needs Python 3.8 to 3.11 (it imports _sha256, gone in 3.12); none found. "
            "Install python3.11 or pass --python.")  # fmt: skip
        return NO_INTERPRETER
    print(ensure(args.venv.resolve(), python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
