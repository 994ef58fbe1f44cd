"""The README's curl examples, run as written against the test network.

The examples address the demo network (ports 7000+, state in .state/demo); the test points
them at the test network by rewriting exactly those two things.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.integration.conftest import BASE_PORT, ROOT, STATE_DIR

pytestmark = pytest.mark.network


def readme_api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Calling the API", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under 'Calling the API'"
    return match.group(1)


def for_test_network(script: str) -> str:
    script = script.replace(".state/demo", str(STATE_DIR))
    return re.sub(
        r"127\.0\.0\.(\d+):7(\d{3})\b", lambda m: f"127.0.0.{m.group(1)}:{BASE_PORT + int(m.group(2))}", script
    )


def json_documents(text: str) -> list[dict[str, Any]]:
    """curl prints each answer without a trailing newline: split the stream into documents."""
    decoder, documents, i = json.JSONDecoder(), [], 0
    while (start := text.find("{", i)) != -1:
        document, i = decoder.raw_decode(text, start)
        documents.append(document)
    return documents


def test_readme_curl_examples_work_as_written(network: dict[str, Any]) -> None:
    script = for_test_network(readme_api_block())
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    documents = json_documents(result.stdout)
    payment = next(d for d in documents if "payment_id" in d and "timeline" in d)
    assert payment["status"] == "completed", payment
    account = next(d for d in documents if "balances" in d)
    assert account["balances"]["USD"] == "750.00"
    problem = documents[-1]
    assert problem["code"] == "invalid_amount", problem
