"""Property-based fuzzing of the live gateways: stateful and negative schemathesis runs (decision 0029).

The bank gateway of USBank and the regulator's gateway, as ``network up`` starts them on the shared
test network, are driven through their published /openapi.json:

- **stateful** (bank): schemathesis chains operations along the document's OpenAPI links (open an
  account -> issue to it -> pay it -> read the payment, key -> revoke, webhook -> deliveries ...);
- **negative** (bank and regulator): every operation gets requests that break its schema.

Every answer must be as documented (status code, content type, headers, body schema), never a 5xx,
and every refused (4xx) answer must leave the state that matters as it was: the fuzzer's accounts
(balances, status, limits, keys, history, webhooks), the bank's payments, supply and positions, and
on the regulator the corridor policy, alert rules, alerts and disclosure requests.

Money stays safe: the merchant key is a merchant opened for the fuzzer, the operator only reaches
accounts the fuzzer opened, and the operations that would change the shared network for the tests
after this one (settlement cycles, disclosure answers, the regulator's policy and rule writes) are
fuzzed in negative mode only, where each must be refused and change nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from tests.integration.bank_api_support import TIMEOUT, BankGateway, Merchant, gateways_of, unique, wait_for

pytestmark = pytest.mark.network

US = "USBankMSP"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]

# Bounded so the whole file runs in a few minutes on two cores (decision 0029): each call is a
# Fabric query or transaction, and each refused one costs a state snapshot as well.
STATEFUL_SCENARIOS = 20
STATEFUL_STEPS = 10
STATEFUL_BATCHES = 8
NEGATIVE_EXAMPLES = 5
REGULATOR_POSITIVE_EXAMPLES = 3

# Operations fuzzed in negative mode only: an accepted call would change the shared network for
# the tests that run after this file (a settlement cycle takes every completed payment; a
# disclosure answer is the bank's reply to a real request of the regulator).
BANK_NEGATIVE_ONLY = {
    ("POST", "/v1/settlement-cycles"),
    ("POST", "/v1/settlement-cycles/{cycle_id}/confirmation"),
    ("POST", "/v1/disclosure-requests/{request_id}/approval"),
    ("POST", "/v1/disclosure-requests/{request_id}/refusal"),
}

# Free-text fields of the bank's requests (the document's "Printable characters only").
FREE_TEXT = ("holder", "kyc_ref", "reason", "label", "remittance")
# Payments still on their way: their completion or refund moves balances, supply and positions.
OPEN_STATUSES = ("initiated", "rejected")
# Parts of a snapshot that may grow between two calls without either call having done it: the
# regulator raises alerts from payments it sees, some time after they were made.
GROWING = {"alerts"}

# No shrinking: replaying a failing example against a live network that has moved on draws other
# answers, other links and other rules, which hypothesis reports as a flaky strategy in place of the
# failure. The first failing example is reported as found, with its curl command.
FUZZ_SETTINGS = settings(
    phases=(Phase.explicit, Phase.generate),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    print_blob=True,
)


class _Pace:
    """At most RATE requests a second from this file, half the gateway's limit per key (100/s).

    The snapshots read a few dozen answers per fuzzed call with the operator key, which the tests
    after this file use too: the fuzzing must stay under its rate limit, not exhaust it.
    """

    RATE = 50.0
    last = 0.0

    @classmethod
    def wait(cls) -> None:
        delay = cls.last + 1 / cls.RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cls.last = time.monotonic()


def _get(gateway: BankGateway, path: str, headers: dict[str, str]) -> Any:
    _Pace.wait()
    response = requests.get(gateway.url + path, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


@dataclass
class Fuzzer:
    """The gateway under fuzzing, the keys it is called with, and the state it must keep on refusals."""

    gateway: BankGateway
    merchant: Merchant
    snapshot: Callable[[Fuzzer], dict[str, Any]]
    accounts: list[str] = field(default_factory=list)
    last: dict[str, Any] | None = None
    calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def headers_for(self, operation: Any) -> dict[str, str]:
        """The merchant's key for the merchant's operations, the operator's for every other one."""
        summary = str(operation.definition.raw.get("summary", ""))
        return (
            self.merchant.headers if summary.endswith("(merchant)") or operation.path == "/v1/me" else self.gateway.op
        )

    def quiet(self) -> None:
        """Wait until no payment of the bank is still open: its completion or refund would move balances.

        A payment left open longer (another test's, on a shared network) is let be: the comparison
        of the two snapshots still tells whether anything moved during the call.
        """
        if self.gateway.msp_id == "RegulatorMSP":
            return

        def settled() -> bool:
            return not any(
                _get(self.gateway, f"/v1/payments?status={status}&page_size=1", self.gateway.op)["payments"]
                for status in OPEN_STATUSES
            )

        wait_for(settled, timeout=60)

    def state(self) -> dict[str, Any]:
        self.quiet()
        return self.snapshot(self)

    def call(self, case: Any, checks: list[Any], **kwargs: Any) -> Any:
        """Call ``case`` with its role's key; a refused call must leave the state as it was before."""
        before = self.last if self.last is not None else self.state()
        _Pace.wait()
        response = case.call(headers=self.headers_for(case.operation), timeout=TIMEOUT, **kwargs)
        answers = self.calls.setdefault(f"{case.method} {case.path}", {})
        answer = str(response.status_code)
        if response.status_code in (404, 409):  # which one: the code says how deep the flow went
            answer += " " + str(response.json().get("code"))
        answers[answer] = answers.get(answer, 0) + 1
        self._remember(case, response)
        after = self.state()
        self.last = after
        if 400 <= response.status_code < 500:
            assert _unchanged(before, after), (
                f"{case.method} {case.formatted_path} was refused ({response.status_code} {response.text[:300]}) "
                f"but the state changed:\n{_difference(before, after)}\nreproduce with: {case.as_curl_command()}"
            )
        return response

    def _remember(self, case: Any, response: Any) -> None:
        """Accounts the fuzzer opened are its own: the snapshot follows them (the latest few)."""
        if (case.method, case.path) == ("POST", "/v1/accounts") and response.status_code == 201:
            self.accounts = [*self.accounts, response.json()["account"]["account_id"]][-4:]


def _unchanged(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Equal, except that a growing part (alerts the regulator raises from earlier payments) may only grow."""
    for key in set(before) | set(after):
        if key in GROWING:
            if any(after[key].get(item) != value for item, value in before[key].items()):
                return False
        elif before.get(key) != after.get(key):
            return False
    return True


def _difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = sorted(set(before) | set(after))
    return "\n".join(
        f"  {key}: {before.get(key)!r} -> {after.get(key)!r}" for key in keys if before.get(key) != after.get(key)
    )


def bank_state(fuzzer: Fuzzer) -> dict[str, Any]:
    """What a refused request to a bank's gateway must not change, read through the gateway."""
    us, op, merchant = fuzzer.gateway, fuzzer.gateway.op, fuzzer.merchant
    state: dict[str, Any] = {
        "supply": _get(us, "/v1/supply", op),
        "positions": _get(us, "/v1/positions", op),
        "payments": [(p["payment_id"], p["status"]) for p in _get(us, "/v1/payments?page_size=100", op)["payments"]],
        "cycles": [(c["cycle_id"], c["status"]) for c in _get(us, "/v1/settlement-cycles", op)["cycles"]],
        "webhooks": _get(us, "/v1/webhooks", merchant.headers),
    }
    for account in [merchant.account_id, *fuzzer.accounts]:
        state[f"account {account}"] = _get(us, f"/v1/accounts/{account}", op)
        state[f"history {account}"] = _get(us, f"/v1/accounts/{account}/history?page_size=100", op)
        state[f"keys {account}"] = _get(us, f"/v1/accounts/{account}/api-keys", op)
    return state


def regulator_state(fuzzer: Fuzzer) -> dict[str, Any]:
    """What a refused request to the regulator's gateway must not change."""
    reg, op = fuzzer.gateway, fuzzer.gateway.op
    return {
        "supply": _get(reg, "/v1/supply", op),
        "policy": _get(reg, "/v1/corridor-policy", op),
        "policy history": _get(reg, "/v1/corridor-policy/history", op),
        "alert rules": _get(reg, "/v1/alert-rules", op),
        "alerts": {alert["alert_id"]: alert for alert in _get(reg, "/v1/alerts", op)["alerts"]},
        "disclosure requests": _get(reg, "/v1/disclosure-requests", op),
    }


@pytest.fixture(scope="module")
def bank(network: dict[str, Any]) -> Iterator[Fuzzer]:
    us = gateways_of(network)[US]
    assert wait_for(us.ready, timeout=60)
    merchant = us.open_account("Gateway Fuzzer", "US")
    us.issue(merchant.account_id, "USD", "500.00")
    fuzzer = Fuzzer(us, merchant, bank_state)
    yield fuzzer
    report(fuzzer)


@pytest.fixture(scope="module")
def regulator(network: dict[str, Any], bank: Fuzzer) -> Iterator[Fuzzer]:
    org = network["orgs"]["RegulatorMSP"]
    gateway = BankGateway("RegulatorMSP", org["gateway_url"], Path(org["operator_key_file"]))
    assert wait_for(gateway.ready, timeout=60)
    fuzzer = Fuzzer(gateway, bank.merchant, regulator_state)
    yield fuzzer
    report(fuzzer)


def report(fuzzer: Fuzzer) -> None:
    """Answers per operation and status, to see what the fuzzing reached (pytest -s shows it)."""
    total: dict[str, int] = {}
    lines = []
    for operation, answers in sorted(fuzzer.calls.items()):
        lines.append(f"  {operation}: {dict(sorted(answers.items()))}")
        for answer, count in answers.items():
            status = answer[:3]
            total[status] = total.get(status, 0) + count
    print(f"\n{fuzzer.gateway.msp_id}: answers by status {dict(sorted(total.items()))}", *lines, sep="\n")


def _schema(gateway: BankGateway) -> Any:
    schema = schemathesis.openapi.from_url(gateway.url + "/openapi.json", timeout=TIMEOUT)
    # Each call carries the key of its role (Fuzzer.headers_for); a generated X-API-Key beside it
    # would make a "negative" case that the valid Authorization header turns into a valid request.
    schema.config.generation.update(with_security_parameters=False)
    return schema


def _into_the_network(case: Any, fuzzer: Fuzzer) -> None:
    """Steer valid money requests to what this network takes, so the flows go past the first refusal.

    A random currency code is almost never one of the network's, a random amount rarely fits the
    currency's exponent or the fuzzer's balance; those refusals are fuzzed in negative mode and by the
    unit properties. Here: USD, at most 5.00, and a payment to one of the fuzzer's accounts (a link
    fills payee_account) is made to this bank. Likewise free text keeps its printable characters
    (the generator draws unassigned code points, which the document's pattern cannot exclude).
    """
    if case.method not in ("POST", "PUT") or not isinstance(case.body, dict):
        return
    for name in FREE_TEXT:
        if isinstance(case.body.get(name), str):
            case.body[name] = "".join(ch for ch in case.body[name] if ch.isprintable()).strip() or "fuzz"
    money = ("/v1/payments", "/v1/issuances", "/v1/redemptions")
    if case.path not in money:
        return
    # The generator draws the same few keys again ("0"), which made most payments a replay with
    # another body (409 idempotency_key_reused, proven to change nothing); the unit properties
    # cover reuse, so here each request has a key of its own.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = unique("fuzz")
    case.body["currency"] = "USD"
    if case.body.get("payee_currency") is not None:
        case.body["payee_currency"] = "USD"
    try:
        amount = min(Decimal(str(case.body.get("amount"))), Decimal(5)).quantize(Decimal("0.01"), ROUND_DOWN)
    except InvalidOperation:
        return
    case.body["amount"] = str(max(amount, Decimal("0.01")))
    if case.body.get("payee_account") in [fuzzer.merchant.account_id, *fuzzer.accounts]:
        case.body["payee_bank"] = US


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _run_negative(fuzzer: Fuzzer, operation: Any, examples: int) -> None:
    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def run(case: Any) -> None:
        # Where it finds nothing to break (an optional body left out), the generator falls back to a
        # valid request: that one is not sent, for it would open a settlement cycle or change the
        # corridor policy on the shared network. Valid requests are the stateful run's.
        if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE:
            return
        response = fuzzer.call(case, NEGATIVE_CHECKS)
        case.validate_response(response, checks=NEGATIVE_CHECKS, headers=fuzzer.headers_for(operation))

    # An operation without parameters or body (GET /healthz, GET /v1/supply ...) has nothing to break.
    with contextlib.suppress(Unsatisfiable):
        run()


def test_bank_gateway_stateful(bank: Fuzzer) -> None:
    """Chains of operations along the document's links, as the operator and the fuzzer's merchant."""
    schema = _schema(bank.gateway).exclude(
        func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in BANK_NEGATIVE_ONLY
    )
    base = schema.as_state_machine()

    scenarios = [0]
    failures: list[Exception] = []  # the first failed check, kept should hypothesis lose it on a replay

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            scenarios[0] += 1

        def before_call(self, case: Any) -> None:
            _into_the_network(case, bank)

        def call(self, case: Any, **kwargs: Any) -> Any:
            try:
                return bank.call(case, STATEFUL_CHECKS, **kwargs)
            except Exception as failure:
                failures.append(failure)
                raise

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=STATEFUL_CHECKS, headers=bank.headers_for(case.operation))
            except Exception as failure:
                failures.append(failure)
                raise

    started, batches = time.monotonic(), 0
    # Which rules a scenario may take depends on the live answers (a link is followed only after its
    # source answered), so two scenarios with the same start can draw differently, and hypothesis stops
    # the run as a flaky strategy: no check failed. As schemathesis's own runner does, the run goes on
    # with a new batch until the scenarios are done; a failure of a check is reported as found. The
    # batches draw at random (not derandomized) so that a new one does not repeat the last.
    while scenarios[0] < STATEFUL_SCENARIOS and batches < STATEFUL_BATCHES:
        batches += 1
        left = STATEFUL_SCENARIOS - scenarios[0]
        try:
            Machine.run(
                settings=settings(
                    FUZZ_SETTINGS, derandomize=False, max_examples=left, stateful_step_count=STATEFUL_STEPS
                )
            )
        except (FlakyFailure, FlakyStrategyDefinition) as flaky:
            # A check that failed and did not fail again on the replay still failed on a live network.
            if failures:
                raise failures[0] from flaky
            if isinstance(flaky, FlakyFailure):
                raise
            continue
    assert scenarios[0] >= STATEFUL_SCENARIOS, f"only {scenarios[0]} scenarios ran in {batches} batches"
    print(f"\nstateful run over the bank gateway: {scenarios[0]} scenarios in {batches} batches, "
          f"{time.monotonic() - started:.0f}s")  # fmt: skip


def test_bank_gateway_negative(bank: Fuzzer) -> None:
    """Every operation of the bank's document, with requests that break its schema: refused, nothing changed."""
    for operation in _operations(_schema(bank.gateway)):
        _run_negative(bank, operation, NEGATIVE_EXAMPLES)


def test_regulator_gateway_negative(regulator: Fuzzer) -> None:
    """Every operation of the regulator's document, with requests that break its schema."""
    for operation in _operations(_schema(regulator.gateway)):
        _run_negative(regulator, operation, NEGATIVE_EXAMPLES)


def test_regulator_gateway_reads(regulator: Fuzzer) -> None:
    """The regulator's reads with valid data: as documented, never a 5xx.

    Its writes (corridor policy, alert rules, acknowledgements, disclosure requests) are fuzzed in
    negative mode only: a valid one would change the policy every other test's payments run under.
    """
    schema = _schema(regulator.gateway)
    for operation in _operations(schema):
        if operation.method.upper() != "GET":
            continue

        @settings(FUZZ_SETTINGS, max_examples=REGULATOR_POSITIVE_EXAMPLES)
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = regulator.call(case, CHECKS)
            case.validate_response(response, checks=CHECKS, headers=regulator.headers_for(case.operation))

        run()
