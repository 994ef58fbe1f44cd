"""Interbank payments through the banks' REST gateways, driven over HTTP by Locust (headless).

Each Locust user is one merchant: a payer account opened through its bank's gateway (which hands out
the merchant API key) and funded through the client. It sends ``POST /v1/payments`` with a fresh
``Idempotency-Key`` to a payee at another bank, paced to ``rate / users`` requests per second, and logs
when it sent the request, when the answer came and the payment id. The payee bank's gateway follower
completes the payment; the bench sees the ``PaymentCompleted`` event on the payee's peer. Latency runs
from sending the request until that event.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.books import CURRENCY, Books, Preloader
from bench.load import CLIENT_ERROR, OK, REFUSED, TIMEOUT, VALID, Account, StepRun, Tracker
from bench.watch import PaymentWatcher

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PER_USER_RATE = 0.5  # requests per second per merchant; users = rate / this
AMOUNT_TEXT = "1.00"
# Problem codes that mean "refused early, come back later" rather than a failure of the payment.
REFUSAL_CODES = frozenset({"overloaded", "rate_limited"})


class RestError(RuntimeError):
    pass


@dataclass(frozen=True)
class Merchant:
    bank: str
    account_id: str
    api_key: str
    gateway_url: str
    payee_bank: str
    payee_account: str


def operator_key(org: Mapping[str, Any]) -> str:
    path = org.get("operator_key_file")
    if not path:
        raise RestError(f"the profile gives {org.get('msp_id')} no operator_key_file")
    return Path(path).read_text(encoding="utf-8").strip()


def open_merchants(
    profile_orgs: Mapping[str, Any],
    banks: list[str],
    books: Books,
    preloader: Preloader,
    count: int,
    log_line: Callable[[str], None],
) -> list[Merchant]:
    """Open ``count`` merchant accounts through the gateways (spread over the banks) and fund them."""
    keys = {bank: operator_key(profile_orgs[bank]) for bank in banks}

    def open_one(i: int) -> tuple[Merchant, Account]:
        bank = banks[i % len(banks)]
        org = profile_orgs[bank]
        url = str(org["gateway_url"]).rstrip("/")
        account_id = f"bench-{books.run_id}-rest{i}"
        for _ in range(10):
            response = requests.post(
                f"{url}/v1/accounts",
                json={
                    "holder": "Bench Merchant",
                    "jurisdiction": str(org.get("jurisdiction") or "US"),
                    "kyc_ref": f"kyc-{account_id}",
                    "account_id": account_id,
                },
                headers={"Authorization": f"Bearer {keys[bank]}"},
                timeout=60,
            )
            if response.status_code != 503 or "Retry-After" not in response.headers:
                break
            time.sleep(float(response.headers["Retry-After"]))  # overloaded: come back as told
        if response.status_code != 201:
            raise RestError(f"POST {url}/v1/accounts answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        payee_bank = banks[(i + 1 + (i // len(banks)) % (len(banks) - 1)) % len(banks)]
        payees = books.payees[payee_bank]
        payee = payees[i % len(payees)]
        merchant = Merchant(bank, account_id, str(body["api_key"]), url, payee_bank, payee.account_id)
        return merchant, Account(bank, account_id)

    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="bench-rest-open") as pool:
        opened = list(pool.map(open_one, range(count)))
    log_line(f"    opened {count} merchant accounts through the gateways; funding them")
    preloader.fund([account for _, account in opened], books)
    return [merchant for merchant, _ in opened]


def users_for(rate: float) -> int:
    return max(1, math.ceil(rate / PER_USER_RATE))


def run_rest_step(
    merchants: list[Merchant],
    watchers: Mapping[str, PaymentWatcher],
    rate: float,
    duration: float,
    drain_timeout: float,
    work_dir: Path,
    step_name: str,
) -> tuple[StepRun, int]:
    """Run Locust for one rate step; returns the step and the number of HTTP requests that failed."""
    users = users_for(rate)
    if users > len(merchants):
        raise RestError(f"rate {rate}/s needs {users} merchants, only {len(merchants)} were opened")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / f"{step_name}.json"
    request_log = work_dir / f"{step_name}.log"
    request_log.unlink(missing_ok=True)
    config.write_text(
        json.dumps(
            {
                "merchants": [m.__dict__ for m in merchants[:users]],
                "per_user_rate": rate / users,
                "amount": AMOUNT_TEXT,
                "currency": CURRENCY,
                "log": str(request_log),
                "run": step_name,
                # Refused requests are not sent again past the step's duration (locustfile.py).
                "stop_retrying_at": time.time() + duration,
            }
        ),
        encoding="utf-8",
    )
    locust = Path(sys.executable).with_name("locust")
    command = [
        str(locust), "-f", str(LOCUSTFILE), "--headless",
        "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{max(1, round(duration))}s", "--stop-timeout", "60",
        "--host", merchants[0].gateway_url, "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_LOCUST_CONFIG": str(config)}
    tracker = Tracker()
    t0 = time.time()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + 180, check=False)
    send_end = time.time()
    (work_dir / f"{step_name}.locust.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
    if not request_log.exists():
        raise RestError(f"locust wrote no request log (exit {result.returncode}): {result.stderr[-1500:]}")

    http_failures = 0
    for line in request_log.read_text(encoding="utf-8").splitlines():
        sent, answered, status, payment_id, payee_bank, refusals, code = line.split(",")
        due = float(sent)
        tracker.begin()
        for _ in range(int(refusals)):
            tracker.note("refused attempts")
        if status != "201" or not payment_id:
            if code in REFUSAL_CODES:
                tracker.finish(REFUSED, due, float(answered), f"HTTP {status} {code}")
                continue
            http_failures += 1
            tracker.finish(CLIENT_ERROR, due, float(answered), f"HTTP {status} {code}".strip())
            continue

        def completed(at: float, due: float = due) -> None:
            tracker.transaction(VALID)
            tracker.transaction(VALID)
            tracker.finish(OK, due, at)

        watchers[payee_bank].expect(payment_id, completed)
    drained = tracker.wait_all(send_end + drain_timeout)
    end = time.time()
    if not drained:
        for _ in range(tracker.open_operations()):
            tracker.finish(TIMEOUT, 0.0, end)
    tracker.freeze()
    sent_count = tracker.started
    return StepRun(rate, duration, tracker, t0, sent_count, send_end, end, drained), http_failures
