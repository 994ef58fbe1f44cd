"""The regulator suspends a bank and reinstates it while REST payments keep flowing.

Merchants at the three banks pay one another through their gateways in the background the
whole time. The regulator suspends HKBank with the network tool's command: new payments to
and from HKBank are refused with 409 ``bank_suspended`` naming the bank and the reason, while
payments between the other banks go on; a payment already in flight to HKBank completes;
HKBank still confirms a settlement cycle. After reinstatement payments to and from HKBank
work again. At the end every payment accepted is completed or refunded, each request had one
effect (balances are exactly what the final statuses say) and conservation holds.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.bank_api_support import BankGateway, Merchant, ready_gateways, unique, wait_for
from tests.integration.conftest import network_cli
from tests.integration.deposit_token_support import Consortium

pytestmark = pytest.mark.network

US, HK, SG = "USBankMSP", "HKBankMSP", "SGBankMSP"
REASON = "AML review 2025-17 (integration test)"
FUNDING = Decimal("50.00")
# What a request may settle into; anything else (503, a dropped connection, a request still in
# progress) is sent again with the same Idempotency-Key until it settles.
SETTLED = {201, 400, 403, 404}
UNSETTLED_409 = {"idempotency_in_progress"}


@dataclass
class Attempt:
    """One payment request through a gateway and what came of it."""

    payer: str
    payee: str
    amount: Decimal
    key: str
    origin: str  # "background" or "test"
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0  # 0: no HTTP answer
    code: str = ""
    detail: str = ""
    payment_id: str = ""
    final: str = ""  # completed or refunded, for an accepted payment
    first: tuple[int, str] = (0, "")  # the first answer (status, code), before any resending

    @property
    def involves_hk(self) -> bool:
        return HK in (self.payer, self.payee)

    @property
    def settled(self) -> bool:
        return self.status in SETTLED or (self.status == 409 and self.code not in UNSETTLED_409)


class Traffic:
    """Merchants of the three banks paying one another, every answer recorded."""

    def __init__(self, banks: dict[str, BankGateway], merchants: dict[str, Merchant]) -> None:
        self.banks = banks
        self.merchants = merchants
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # Held by the test while HKBank's gateway is down, so that no payment from HKBank is cut off.
        self.hk_payer = threading.Lock()
        self.counter = itertools.count(1)
        self.threads = [
            threading.Thread(
                target=self._run, args=([(US, HK), (US, SG), (SG, HK), (SG, US)], nullcontext()), daemon=True
            ),
            threading.Thread(target=self._run, args=([(HK, US), (HK, SG)], self.hk_payer), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=300)

    def _run(self, pairs: list[tuple[str, str]], gate: AbstractContextManager[Any]) -> None:
        for payer, payee in itertools.cycle(pairs):
            if self.stop.is_set():
                return
            with gate:
                self.pay(payer, payee, origin="background")
            self.stop.wait(0.2)

    def pay(self, payer: str, payee: str, origin: str = "test") -> Attempt:
        """One payment request; the test's own are sent again until they settle (a 503 is not the point)."""
        amount = Decimal(next(self.counter) % 9 + 1) / 100
        attempt = Attempt(payer, payee, amount, unique("suspension"), origin)
        with self.lock:
            self.attempts.append(attempt)
        attempt.sent = time.monotonic()
        self._send(attempt)
        attempt.answered = time.monotonic()
        attempt.first = (attempt.status, attempt.code)
        if origin == "test":
            self.settle(attempt)
        return attempt

    def _send(self, attempt: Attempt) -> None:
        gateway, merchant = self.banks[attempt.payer], self.merchants[attempt.payer]
        payee = self.merchants[attempt.payee].account_id
        try:
            response = gateway.pay(merchant, attempt.payee, payee, "USD", f"{attempt.amount:.2f}", attempt.key)
        except requests.RequestException:
            attempt.status, attempt.code = 0, ""
            return
        attempt.status = response.status_code
        body = response.json()
        attempt.code = str(body.get("code", ""))
        attempt.detail = str(body.get("detail", ""))
        attempt.payment_id = str(body.get("payment_id", ""))

    def settle(self, attempt: Attempt) -> None:
        """Send an unsettled request again with its key: the gateway and the contract make it one effect."""
        deadline = time.monotonic() + 180
        while not attempt.settled and time.monotonic() < deadline:
            time.sleep(1)
            self._send(attempt)
        assert attempt.settled, f"payment request {attempt.key} never settled: {attempt}"

    def finalise(self, attempt: Attempt) -> None:
        """Wait until an accepted payment is completed or refunded."""
        gateway = self.banks[attempt.payer]
        record = wait_for(
            lambda: (p := gateway.payment(attempt.payment_id))["status"] in ("completed", "refunded") and p,
            timeout=180,
        )
        assert record, f"payment {attempt.payment_id} is still in flight: {gateway.payment(attempt.payment_id)}"
        attempt.final = record["status"]


def _refused_for_suspension(attempt: Attempt) -> bool:
    return (
        attempt.status == 409
        and attempt.code == "bank_suspended"
        and attempt.detail.startswith(f"{HK} is suspended by the regulator since ")
        and f"(reason: {REASON})" in attempt.detail
    )


def _hk_status(consortium: Consortium, org: str) -> dict[str, Any]:
    banks = consortium[org].evaluate("GetReferenceData")["banks"]
    record: dict[str, Any] = next(bank for bank in banks if bank["msp_id"] == HK)
    return record


def _seen_everywhere(consortium: Consortium, status: str) -> None:
    """Wait until every bank's peer has committed HKBank's new status (each peer commits on its own)."""
    seen = wait_for(lambda: all(_hk_status(consortium, org)["status"] == status for org in (US, HK, SG)), timeout=60)
    assert seen, f"not every peer sees {HK} {status}"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    return ready_gateways(network)


@pytest.fixture(scope="module")
def consortium(profile_path: Path) -> Iterator[Consortium]:
    clients = Consortium(profile_path)
    yield clients
    clients.close()


def _post_until_answered(bank: BankGateway, path: str, body: dict[str, Any]) -> requests.Response:
    """POST, again after a 503 (a cycle over a backlog can outlast the commit deadline; the same id is safe)."""
    response = wait_for(lambda: (r := bank.post(path, body)).status_code != 503 and r, timeout=300)
    assert response, f"{path} answered 503 throughout"
    return response


def test_a_bank_is_suspended_and_reinstated_while_payments_flow(
    banks: dict[str, BankGateway], consortium: Consortium
) -> None:
    us, hk = banks[US], banks[HK]
    merchants = {
        msp: banks[msp].open_account(unique(f"merchant-{msp}"), msp.removesuffix("BankMSP")) for msp in (US, HK, SG)
    }
    for msp, merchant in merchants.items():
        banks[msp].issue(merchant.account_id, "USD", f"{FUNDING:.2f}")
    traffic = Traffic(banks, merchants)
    hk_gateway_down = hk_payer_held = False
    try:
        traffic.start()
        assert wait_for(lambda: sum(a.status == 201 for a in traffic.attempts) >= 6, timeout=120), (
            f"payments are not flowing before the suspension: {traffic.attempts}"
        )

        # Only the regulator decides: a bank's own admin cannot suspend another bank.
        assert consortium[US].refused("SuspendBank", None, HK, REASON).reason == "not_authorized"

        # A payment to HKBank that is in flight when the suspension comes: HKBank's gateway is
        # stopped, so nothing completes it before.
        traffic.hk_payer.acquire()
        hk_payer_held = True
        network_cli("kill-node", f"gateway.{HK}", "--term")
        hk_gateway_down = True
        in_flight = traffic.pay(US, HK)
        assert in_flight.status == 201, in_flight
        suspending_at = time.monotonic()
        out = network_cli("regulator", "suspend-bank", "--bank", HK, "--reason", REASON).stdout
        assert f"{HK}" in out and "suspended" in out and REASON in out, out
        _seen_everywhere(consortium, "suspended")
        window_opens = time.monotonic()
        suspended = _hk_status(consortium, "RegulatorMSP")
        assert (suspended["status"], suspended["status_reason"]) == ("suspended", REASON)
        in_flight_record = us.payment(in_flight.payment_id)
        assert in_flight_record["status"] == "initiated", "the payment was meant to be in flight at the suspension"

        # Suspending twice is refused, with the contract's code, by the command itself.
        again = network_cli("regulator", "suspend-bank", "--bank", HK, "--reason", "again", check=False)
        assert again.returncode == 1
        assert again.stdout.startswith(f"refused: [invalid_state] {HK} is already suspended since"), again.stdout

        # HKBank's gateway comes back: while suspended, it still completes what was sent to it.
        network_cli("start-node", f"gateway.{HK}")
        assert wait_for(hk.ready, timeout=60)
        hk_gateway_down = False
        traffic.hk_payer.release()
        hk_payer_held = False
        traffic.finalise(in_flight)
        assert in_flight.final == "completed"
        completed = us.payment(in_flight.payment_id)["timeline"][-1]
        assert completed["status"] == "completed"
        assert _instant(completed["at"]) > _instant(suspended["status_since"])  # completed while suspended

        # New payments to and from HKBank are refused, naming the bank and the reason...
        for payer, payee in ((US, HK), (SG, HK), (HK, US), (HK, SG)):
            refused = traffic.pay(payer, payee)
            assert _refused_for_suspension(refused), refused
        within_hk = hk.pay(merchants[HK], HK, hk.open_account(unique("colleague"), "HK").account_id, "USD", "0.01",
                           unique("within"))  # fmt: skip
        assert (within_hk.status_code, within_hk.json()["code"]) == (409, "bank_suspended"), within_hk.text
        # ...while payments between the other banks go on.
        between_others = traffic.pay(US, SG)
        assert between_others.status == 201, between_others
        traffic.finalise(between_others)
        assert between_others.final == "completed"
        listed = network_cli("regulator", "banks").stdout
        assert any(line.split()[:2] == [HK, "suspended"] for line in listed.splitlines()), listed

        # The suspended bank still settles: it confirms its leg of a cycle.
        cycle_id = unique("suspension-cycle")
        opened = _post_until_answered(hk, "/v1/settlement-cycles", {"cycle_id": cycle_id})
        assert opened.status_code == 201, opened.text
        cycle = opened.json()
        assert HK in cycle["banks"], cycle
        confirmed = _post_until_answered(hk, f"/v1/settlement-cycles/{cycle_id}/confirmation",
                                         {"external_ref": unique("rtgs-hk")})  # fmt: skip
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["confirmations"][HK]["confirmed"] is True
        for msp in cycle["banks"]:
            if msp != HK:
                leg = _post_until_answered(banks[msp], f"/v1/settlement-cycles/{cycle_id}/confirmation",
                                           {"external_ref": unique(f"rtgs-{msp}")})  # fmt: skip
                assert leg.status_code == 200, leg.text
        assert us.get(f"/v1/settlement-cycles/{cycle_id}").json()["status"] == "settled"

        window_closes = time.monotonic()
        out = network_cli("regulator", "reinstate-bank", "--bank", HK).stdout
        assert out.split()[:2] == [HK, "active"], out
        _seen_everywhere(consortium, "active")
        reinstated_everywhere = time.monotonic()

        # Payments to and from HKBank work again.
        for payer, payee in ((US, HK), (HK, SG)):
            paid = traffic.pay(payer, payee)
            assert paid.status == 201, paid
            traffic.finalise(paid)
            assert paid.final == "completed"
        assert wait_for(
            lambda: any(a.sent > reinstated_everywhere and a.status == 201 and a.payer == HK for a in traffic.attempts),
            timeout=120,
        ), "background payments from HKBank did not resume after the reinstatement"
    finally:
        if hk_payer_held:
            traffic.hk_payer.release()
        traffic.finish()
        if hk_gateway_down:
            network_cli("start-node", f"gateway.{HK}")
        if _hk_status(consortium, "RegulatorMSP")["status"] == "suspended":
            network_cli("regulator", "reinstate-bank", "--bank", HK)  # leave the shared network as found

    # Every request settled, and every accepted payment is final: nothing lost or left in flight.
    for attempt in traffic.attempts:
        traffic.settle(attempt)
        if attempt.status == 201:
            traffic.finalise(attempt)
    refused_otherwise = [a for a in traffic.attempts if a.status != 201 and not _refused_for_suspension(a)]
    assert refused_otherwise == [], "payment requests that ended neither accepted nor refused for the suspension"
    # Inside the window every payment touching HKBank was refused for the suspension (judged by
    # the first answer: a request without one was sent again after the window); payments between
    # the other banks went on; outside it nothing was refused for a suspension.
    background = [a for a in traffic.attempts if a.origin == "background"]
    inside = [a for a in background if a.sent >= window_opens and a.answered <= window_closes]
    outside = [a for a in background if a.answered < suspending_at or a.sent > reinstated_everywhere]
    answered_inside = [a for a in inside if a.involves_hk and a.first[0] not in (0, 503)]
    assert answered_inside and all(a.first == (409, "bank_suspended") for a in answered_inside), inside
    assert any(a.first[0] == 201 and not a.involves_hk for a in inside), "no payment flowed during the suspension"
    assert all(a.status == 201 for a in outside), [a for a in outside if a.status != 201]
    sys.stderr.write(
        f"suspension: {len(traffic.attempts)} payment requests, "
        f"{sum(a.final == 'completed' for a in traffic.attempts)} completed, "
        f"{sum(a.final == 'refunded' for a in traffic.attempts)} refunded, "
        f"{sum(_refused_for_suspension(a) for a in traffic.attempts)} refused for the suspension; "
        f"in the window {len(inside)} from the background, "
        f"{sum(a.status == 201 and not a.involves_hk for a in inside)} of them accepted between the other banks\n"
    )

    # Exactly once: each merchant's balance is what the final statuses say, no more, no less.
    expected = dict.fromkeys(merchants, FUNDING)
    for attempt in traffic.attempts:
        if attempt.final == "completed":
            expected[attempt.payer] -= attempt.amount
            expected[attempt.payee] += attempt.amount
    for msp, merchant in merchants.items():
        assert Decimal(banks[msp].balances(merchant)["USD"]) == expected[msp], msp
    accepted = [a.payment_id for a in traffic.attempts if a.status == 201]
    assert len(accepted) == len(set(accepted))
    repeat = next(a for a in traffic.attempts if a.status == 201)
    again = banks[repeat.payer].pay(merchants[repeat.payer], repeat.payee, merchants[repeat.payee].account_id,
                                    "USD", f"{repeat.amount:.2f}", repeat.key)  # fmt: skip
    assert (again.status_code, again.json()["payment_id"]) == (201, repeat.payment_id)
    assert Decimal(banks[repeat.payer].balances(merchants[repeat.payer])["USD"]) == expected[repeat.payer]

    consortium.assert_conserved()
    assert _hk_status(consortium, "RegulatorMSP")["status"] == "active"
