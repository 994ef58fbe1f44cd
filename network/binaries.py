"""Where the Fabric and Fabric CA binaries are: ``$FABRIC_HOME/bin`` (``make fabric`` puts them there)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fabric_home() -> Path:
    return Path(os.environ.get("FABRIC_HOME", ROOT / ".cache" / "fabric"))


def fabric_bin(name: str) -> Path:
    path = fabric_home() / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"Fabric binary {path} is missing: run 'make fabric' first")
    return path
