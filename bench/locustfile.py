"""Locust users for the REST workload (run by ``bench/rest.py``; not meant to be run by hand).

``BENCH_LOCUST_CONFIG`` names a JSON file: the merchants (one per user: gateway URL, API key, payee),
the pace per user, and the file to log every payment to as
``sent,answered,http_status,payment_id,payee_bank,refusals,code`` (``time.time()`` seconds; ``sent``
is the first attempt, the rest the last one's).

A 429 or 503 with ``Retry-After`` is honoured as a client should: the user waits that long and sends
the same request again (same Idempotency-Key), up to ``MAX_REFUSALS`` times and not once the step's
time is up (``stop_retrying_at``: a retry then would only stretch the step past its duration);
``refusals`` counts them and ``code`` is the last problem code.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, constant_throughput, events, task

_CONFIG: dict[str, Any] = json.loads(Path(os.environ["BENCH_LOCUST_CONFIG"]).read_text(encoding="utf-8"))
_MERCHANTS = itertools.cycle(_CONFIG["merchants"])
# Open for the life of the Locust process (closed when it quits); line-buffered so nothing is lost.
_LOG = open(_CONFIG["log"], "a", encoding="utf-8", buffering=1)  # noqa: SIM115
MAX_REFUSALS = 3
_STOP_RETRYING_AT = float(_CONFIG.get("stop_retrying_at") or "inf")
MAX_RETRY_AFTER = 10.0


@events.quitting.add_listener
def _close_log(**_: Any) -> None:
    _LOG.flush()
    _LOG.close()


class Merchant(HttpUser):
    wait_time = constant_throughput(float(_CONFIG["per_user_rate"]))

    def on_start(self) -> None:
        self.merchant = next(_MERCHANTS)
        self.sequence = itertools.count()

    @task
    def pay(self) -> None:
        merchant = self.merchant
        body = {
            "payee_bank": merchant["payee_bank"],
            "payee_account": merchant["payee_account"],
            "currency": _CONFIG["currency"],
            "amount": _CONFIG["amount"],
        }
        headers = {
            "Authorization": f"Bearer {merchant['api_key']}",
            "Idempotency-Key": f"{_CONFIG['run']}-{next(self.sequence)}-{uuid.uuid4().hex[:12]}",
        }
        sent = time.time()
        refusals = 0
        while True:
            payment_id, code = "", ""
            with self.client.post(
                f"{merchant['gateway_url']}/v1/payments",
                json=body,
                headers=headers,
                name="POST /v1/payments",
                catch_response=True,
                timeout=120,
            ) as response:
                if response.status_code == 201:
                    try:
                        payment_id = str(response.json()["payment_id"])
                    except (ValueError, KeyError):
                        response.failure("201 without a payment_id")
                else:
                    code = _problem_code(response)
                    response.failure(f"HTTP {response.status_code} {code}")
            wait = _retry_after(response)
            if wait is None or refusals >= MAX_REFUSALS or time.time() + wait > _STOP_RETRYING_AT:
                break
            refusals += 1
            time.sleep(wait)  # gevent's sleep under Locust: the user waits, nothing else does
        answered = time.time()
        _LOG.write(
            f"{sent:.6f},{answered:.6f},{response.status_code},{payment_id},{merchant['payee_bank']},"
            f"{refusals},{code}\n"
        )


def _problem_code(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and code.isidentifier() else ""


def _retry_after(response: Any) -> float | None:
    """Seconds the gateway asked us to wait before sending again (429 or 503 with Retry-After)."""
    if response.status_code not in (429, 503):
        return None
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
