"""Build the Fabric client's own distribution (``gateway/fabric_client``) and install it into an empty
virtual environment, as a user of the library would. Shared by the packaging unit test and the
integration test that runs the installed library against the real network."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT_DIR = ROOT / "gateway" / "fabric_client"
DISTRIBUTION = "fabric-gateway-client"
# What an empty venv may hold once the wheel is in: the library, its four dependencies and theirs.
ALLOWED_DISTRIBUTIONS = {
    "pip",
    "setuptools",
    DISTRIBUTION,
    "grpcio",
    "protobuf",
    "hyperledger-fabric-protos",
    "cryptography",
    "cffi",
    "pycparser",
    "typing-extensions",
}


@dataclass(frozen=True)
class InstalledClient:
    wheel: Path
    sdist: Path
    python: Path
    workdir: Path

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the venv's Python outside the project tree, without the project on the path."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONNOUSERSITE"] = "1"
        return subprocess.run(
            [str(self.python), *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def build_distributions(out_dir: Path) -> tuple[Path, Path]:
    """``python -m build`` on a copy of the client's folder: the copy proves the folder is self-contained
    and keeps build leftovers out of the source tree. Returns (wheel, sdist)."""
    source = out_dir / "source" / "fabric_client"
    shutil.copytree(
        CLIENT_DIR, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    )
    dist = out_dir / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)])
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return wheel, sdist


def create_empty_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    return path / "bin" / "python"


def installed_distributions(python: Path) -> set[str]:
    listing = run([str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"])
    names = (line.split("==")[0] for line in listing.stdout.splitlines() if "==" in line)
    return {name.lower().replace("_", "-") for name in names}


@functools.cache
def installed_client() -> InstalledClient:
    """Build once per test process and install the wheel into a fresh empty venv."""
    base = Path(tempfile.mkdtemp(prefix="fabric-client-package-"))
    atexit.register(shutil.rmtree, base, True)
    wheel, sdist = build_distributions(base)
    python = create_empty_venv(base / "venv")
    before = installed_distributions(python)
    assert before <= {"pip", "setuptools"}, f"a fresh venv is not empty: {sorted(before)}"
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)])
    workdir = base / "work"
    workdir.mkdir()
    return InstalledClient(wheel=wheel, sdist=sdist, python=python, workdir=workdir)


def client_dependencies() -> list[str]:
    data = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    dependencies: list[str] = data["project"]["dependencies"]
    return dependencies


def project_dependencies() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dependencies: list[str] = data["project"]["dependencies"]
    return dependencies
