"""The client as a library of its own: its wheel and sdist build, and the wheel installs and imports in an
empty virtual environment without Flask, SQLAlchemy or anything else of the deposit-token project.
No network is needed, so a packaging mistake fails here, early."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.client_package import (
    ALLOWED_DISTRIBUTIONS,
    CLIENT_DIR,
    DISTRIBUTION,
    ROOT,
    client_dependencies,
    installed_client,
    installed_distributions,
    project_dependencies,
)

pytestmark = pytest.mark.timeout(900)

ABSOLUTE_SELF_IMPORT = re.compile(r"^\s*(from|import)\s+(gateway\b|fabric_client\b)", re.MULTILINE)
MODULES = sorted(path.name for path in CLIENT_DIR.glob("*.py"))

IMPORT_CHECK = """
import importlib.metadata, importlib.util, pathlib, sys
import fabric_client
from fabric_client import Gateway, Identity, ECDSASigner, FileCheckpointer, GatewayError
from fabric_client.errors import EndorseError, SubmitError, CommitStatusError, CommitError
package = pathlib.Path(fabric_client.__file__).parent
assert pathlib.Path(sys.prefix) in package.parents, package
assert (package / "py.typed").is_file()
for absent in ("flask", "sqlalchemy", "gateway", "grpc_status", "yaml"):
    assert importlib.util.find_spec(absent) is None, absent + " is importable"
assert importlib.metadata.version("fabric-gateway-client") == fabric_client.__version__
print(fabric_client.__version__)
"""


def test_wheel_holds_the_package_and_its_type_marker_only() -> None:
    wheel = installed_client().wheel
    names = zipfile.ZipFile(wheel).namelist()
    package_files = sorted(name.split("/", 1)[1] for name in names if name.startswith("fabric_client/"))

    assert package_files == sorted([*MODULES, "py.typed"])
    assert all(name.startswith(("fabric_client/", "fabric_gateway_client-")) for name in names)
    assert wheel.name.endswith("-py3-none-any.whl")


def test_sdist_holds_sources_readme_and_licence() -> None:
    sdist = installed_client().sdist
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}

    assert {"pyproject.toml", "README.md", "LICENSE", "py.typed", *MODULES} <= names


def test_wheel_installs_into_an_empty_venv_with_only_its_four_dependencies() -> None:
    client = installed_client()

    imported = client.run("-c", IMPORT_CHECK)

    assert imported.returncode == 0, imported.stderr
    installed = installed_distributions(client.python)
    assert DISTRIBUTION in installed
    assert "flask" not in installed and "sqlalchemy" not in installed
    assert installed <= ALLOWED_DISTRIBUTIONS, f"unexpected: {sorted(installed - ALLOWED_DISTRIBUTIONS)}"
    check = client.run("-m", "pip", "check", "--disable-pip-version-check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_dependencies_are_the_four_with_the_projects_ranges() -> None:
    """The project pins the same ranges, so the library and the project never disagree about a version."""
    library = client_dependencies()
    names = {dependency.split(">")[0].split("<")[0].split("=")[0] for dependency in library}

    assert names == {"grpcio", "protobuf", "hyperledger-fabric-protos", "cryptography"}
    assert set(library) <= set(project_dependencies())


def test_the_project_depends_on_the_distribution_and_uses_it_by_its_one_name() -> None:
    """The project lists the client as a dependency, takes it from the installed distribution, and no
    module imports it through the project's folder: two copies would not share exception classes."""
    import fabric_client

    assert any(dependency.startswith(DISTRIBUTION + ">=") for dependency in project_dependencies())
    assert importlib.metadata.version(DISTRIBUTION) == fabric_client.__version__
    assert fabric_client.Gateway.__module__ == "fabric_client.gateway"
    with pytest.raises(ImportError, match="as fabric_client"):
        importlib.import_module("gateway.fabric_client")
    through_folder = re.compile(r"^\s*(from|import)\s+gateway(\.fabric_client\b|\s+import\s+fabric_client\b)", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("network", "chaincode", "gateway", "tests", "bench", "demo", "compat")
        for path in (ROOT / folder).rglob("*.py")
        if through_folder.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    for module in MODULES:
        text = (CLIENT_DIR / module).read_text(encoding="utf-8")
        assert not ABSOLUTE_SELF_IMPORT.search(text), module


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_strict_is_clean_on_the_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CLIENT_DIR / "pyproject.toml"), str(CLIENT_DIR)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_call_has_a_docstring() -> None:
    missing: list[str] = []
    for module in MODULES:
        tree = ast.parse((CLIENT_DIR / module).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                if ast.get_docstring(node) is None:
                    missing.append(f"{module}:{node.name}")
                if isinstance(node, ast.ClassDef):
                    missing.extend(
                        f"{module}:{node.name}.{item.name}"
                        for item in node.body
                        if isinstance(item, ast.FunctionDef)
                        and not item.name.startswith("_")
                        and ast.get_docstring(item) is None
                    )

    assert missing == []
