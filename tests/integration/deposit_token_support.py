"""Helpers for the deposit-token integration tests: one client per org, conservation, quiet gateways.

Every bank acts through its own peer (``endorsing_organizations=[msp]``) with private input in
the transient map, as the contract API asks. Ids carry a per-run prefix so the tests can run
again on a network that keeps its ledger.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric_client import EndorseError, Gateway, GatewayError
from fabric_client.profile import connect_org

from network import processes

US, HK, SG, REG = "USBankMSP", "HKBankMSP", "SGBankMSP", "RegulatorMSP"
BANKS = (US, HK, SG)
CHAINCODE = "deposit_token"
RETRYABLE = {"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"}
# Reads of supply and books are repeated this often (0.5 s apart) while payments still commit.
STABLE_READ_ATTEMPTS = 60


class Refused(AssertionError):
    """The chaincode refused: ``status`` and ``reason`` (the bracketed code) of its answer."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.chaincode_message or str(error))
        self.error = error
        self.status = error.chaincode_status
        self.reason = error.reason
        self.message = error.chaincode_message or ""


@dataclass
class Outcome:
    """What one submission came to: its result, or the validation code it failed with."""

    result: Any = None
    code: str = "VALID"
    block: int = -1
    attempts: int = 1


@dataclass
class Org:
    msp_id: str
    gateway: Gateway
    # Called with the block of every valid submission: each peer commits blocks on its own,
    # so a test that acts next on another bank's peer first waits for that peer to have it.
    after_commit: Callable[[int], None] | None = None

    @property
    def contract(self) -> Any:
        return self.gateway.get_network("tokens").get_contract(CHAINCODE)

    @staticmethod
    def _transient(request: dict[str, Any] | None) -> dict[str, bytes] | None:
        return None if request is None else {"request": json.dumps(request).encode()}

    def with_counterparty_details(self, function: str, request: dict[str, Any] | None) -> dict[str, Any] | None:
        """``request`` with the details the other bank's peer gives, as the REST gateway adds them.

        ``CompletePayment`` and ``AcceptPvp`` need what the other bank holds in its books
        (docs/decisions/0036); like ``FabricLedger.complete_payment``/``accept_pvp``, ask that bank's
        peer when this bank is the one to act, unless the test passes its own ``details``.
        """
        if request is None or "details" in request or function not in ("CompletePayment", "AcceptPvp"):
            return request
        try:
            if function == "CompletePayment":
                record = self.evaluate("GetPayment", None, str(request.get("payment_id")))
                if record["payee_bank"] != self.msp_id or record["status"] != "initiated":
                    return request
                holder, query, object_id = record["payer_bank"], "GetPaymentDetails", record["payment_id"]
            else:
                record = self.evaluate("GetPvp", None, str(request.get("pvp_id")))
                if record["legs"]["a"]["bank"] != self.msp_id:
                    return request
                holder, query, object_id = record["legs"]["p"]["bank"], "GetPvpDetails", record["pvp_id"]
        except Refused:
            return request
        raw = self.contract.evaluate_transaction(query, object_id, endorsing_organizations=[holder])
        given = json.loads(raw)
        return {**request, "details": given["details"], "salt": given["salt"]}

    def attempt(self, function: str, request: dict[str, Any] | None = None, *args: str) -> Outcome:
        """Endorse, submit and wait once; a validation failure comes back as ``Outcome.code``."""
        request = self.with_counterparty_details(function, request)
        try:
            submitted = self.contract.submit_async(
                function, *args, transient=self._transient(request), endorsing_organizations=[self.msp_id]
            )
        except EndorseError as error:
            if error.chaincode_status is not None:
                raise Refused(error) from None
            raise
        status = submitted.status(60)
        result = json.loads(submitted.result) if submitted.result else None
        code = "VALID" if status.successful else status.code_name
        return Outcome(result=result, code=code, block=status.block_number)

    def submit(
        self,
        function: str,
        request: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        *args: str,
        retries: int = 20,
    ) -> Any:
        """Submit until valid, re-running the whole request after an MVCC or phantom conflict.

        ``request`` may be a callable, so that a retry reads fresh input (pending credits).
        """
        outcome = self.submit_outcome(function, request, *args, retries=retries)
        assert outcome.code == "VALID", f"{function} failed validation: {outcome.code}"
        if self.after_commit is not None:
            self.after_commit(outcome.block)
        return outcome.result

    def submit_outcome(
        self,
        function: str,
        request: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        *args: str,
        retries: int = 20,
    ) -> Outcome:
        for attempt in range(1, retries + 1):
            body = request() if callable(request) else request
            outcome = self.attempt(function, body, *args)
            outcome.attempts = attempt
            if outcome.code not in RETRYABLE or attempt == retries:
                return outcome
        raise AssertionError("unreachable")

    def evaluate(self, function: str, request: dict[str, Any] | None = None, *args: str) -> Any:
        try:
            raw = self.contract.evaluate_transaction(
                function, *args, transient=self._transient(request), endorsing_organizations=[self.msp_id]
            )
        except GatewayError as error:
            if error.chaincode_status is not None:
                raise Refused(error) from None
            raise
        return json.loads(raw) if raw else None

    def refused(self, function: str, request: dict[str, Any] | None = None, *args: str) -> Refused:
        try:
            self.submit(function, request, *args, retries=1)
        except Refused as refusal:
            return refusal
        raise AssertionError(f"{function} was accepted")

    # -- accounts ---------------------------------------------------------------
    def open(self, account_id: str, jurisdiction: str, holder: str | None = None) -> None:
        self.submit(
            "OpenAccount",
            {
                "account_id": account_id,
                "holder": holder or f"Holder {account_id}",
                "jurisdiction": jurisdiction,
                "kyc_ref": f"KYC-{account_id}",
            },
        )

    def account(self, account_id: str) -> Any:
        return self.evaluate("GetAccount", {"account_id": account_id})

    def pending(self, account_id: str) -> list[str]:
        return list(self.account(account_id)["pending_credits"])

    def balance(self, account_id: str, currency: str = "USD") -> int:
        return int(self.account(account_id)["balances"].get(currency, 0))

    def issue(self, account_id: str, amount: int, currency: str = "USD") -> None:
        self.submit(
            "Issue",
            {
                "account_id": account_id,
                "currency": currency,
                "amount": amount,
                "deposit_ref": f"dep-{uuid.uuid4().hex}",
            },
        )

    def transfer_request(
        self, source: str, target: str, amount: int, transfer_id: str, currency: str = "USD"
    ) -> Callable[[], dict[str, Any]]:
        return lambda: {
            "from_account": source,
            "to_account": target,
            "currency": currency,
            "amount": amount,
            "transfer_id": transfer_id,
            "pending_credits": self.pending(source),
        }

    def payment_request(
        self,
        key: str,
        payer: str,
        payee_bank: str,
        payee: str,
        amount: int,
        currency: str = "USD",
        **extra: Any,
    ) -> Callable[[], dict[str, Any]]:
        return lambda: {
            "idempotency_key": key,
            "payer_account": payer,
            "payee_bank": payee_bank,
            "payee_account": payee,
            "currency": currency,
            "amount": amount,
            "pending_credits": self.pending(payer),
            **extra,
        }


class Consortium:
    """A client of every org of the test network."""

    def __init__(self, profile_path: Path) -> None:
        self.profile_path = profile_path
        self.profile = json.loads(profile_path.read_text())
        self.state_dir = Path(self.profile["state_dir"])
        self.orgs = {msp: Org(msp, connect_org(profile_path, msp)) for msp in (*BANKS, REG)}
        for org in self.orgs.values():
            org.after_commit = self.wait_everywhere
        self.run = uuid.uuid4().hex[:8]

    def wait_everywhere(self, block: int) -> None:
        """Return once every org's peer has committed ``block``."""
        for org in self.orgs.values():
            network = org.gateway.get_network("tokens")
            deadline = time.monotonic() + 60
            while True:
                try:
                    with network.get_block_events(start_block=block, filtered=True, timeout=60) as stream:
                        next(iter(stream))
                    break
                except GatewayError as error:
                    # A peer answers NOT_FOUND for a block beyond its next one: it is further behind.
                    if "NOT_FOUND" not in str(error) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def __getitem__(self, msp_id: str) -> Org:
        return self.orgs[msp_id]

    def id(self, name: str) -> str:
        """An id unique to this test run."""
        return f"{self.run}-{name}"

    def payer_and_payee(
        self, payer_bank: str, payee_bank: str, names: tuple[str, str], amount: int, holder: str | None = None
    ) -> tuple[str, str]:
        """A payer at ``payer_bank`` issued ``amount`` USD and a payee at ``payee_bank``, each opened
        in its bank's jurisdiction (the MSP id without ``BankMSP``)."""
        payer, payee = self.id(names[0]), self.id(names[1])
        self[payer_bank].open(payer, jurisdiction_of(payer_bank), holder=holder)
        self[payee_bank].open(payee, jurisdiction_of(payee_bank))
        self[payer_bank].issue(payer, amount)
        return payer, payee

    def close(self) -> None:
        for org in self.orgs.values():
            org.gateway.close()

    def supply(self) -> dict[tuple[str, str], int]:
        """Every token class's supply, each read on its issuer's peer (which holds it exactly)."""
        supply: dict[tuple[str, str], int] = {}
        for bank in BANKS:
            for item in self[bank].evaluate("GetSupply")["token_classes"]:
                if item["issuer"] == bank:
                    supply[(bank, item["currency"])] = item["supply"]
        return supply

    def assert_conserved(self) -> dict[str, int]:
        """Each token class's supply equals what its issuer owes customers; returns per-currency totals.

        Supply and books are separate queries, and a payment a gateway completes between them (a
        retried completion, a release) would show as a gap that is not one: supply is read before
        and after the books, and the reads repeat until it did not move in between.
        """
        for _ in range(STABLE_READ_ATTEMPTS):
            supply = self.supply()
            all_books = {bank: self[bank].evaluate("GetBookTotals")["balances"] for bank in BANKS}
            if self.supply() == supply:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"supply kept moving over {STABLE_READ_ATTEMPTS} reads of the books")
        totals: dict[str, int] = {}
        for bank in BANKS:
            books = all_books[bank]
            issued = {currency: amount for (issuer, currency), amount in supply.items() if issuer == bank}
            for currency in set(books) | set(issued):
                assert books.get(currency, 0) == issued.get(currency, 0), (bank, currency, books, issued)
                assert books.get(currency, 0) >= 0
                totals[currency] = totals.get(currency, 0) + books.get(currency, 0)
        return totals

    def assert_conserved_after(self, timeout: float = 240) -> dict[str, int]:
        """``assert_conserved`` after a test, waiting up to ``timeout`` for completions the gateways still
        make then (a release, a PvP leg, a swept run); a gap that closes is reported as a figure."""
        started = time.monotonic()
        gap_seen = False
        while True:
            try:
                totals = self.assert_conserved()
            except AssertionError:
                if time.monotonic() - started >= timeout:
                    raise
                gap_seen = True
                time.sleep(2)
                continue
            if gap_seen:
                closed = time.monotonic() - started
                print(f"FIGURE conservation: a gap on an issuer's own peer closed after {closed:.1f}s")
            return totals


def jurisdiction_of(bank: str) -> str:
    return bank.removesuffix("BankMSP")


def reason_of(refusal: Refused) -> str:
    match = re.match(r"\[([a-z_]+)\]", refusal.message)
    return match.group(1) if match else ""


def org_home(state_dir: Path, msp_id: str) -> Path:
    """The org's own folder (its processes' pid files and logs are there), from the network profile."""
    profile = json.loads((state_dir / "profile.json").read_text())
    return Path(profile["orgs"][msp_id]["home"])


def org_homes(state_dir: Path) -> list[Path]:
    profile = json.loads((state_dir / "profile.json").read_text())
    return [Path(org["home"]) for org in profile["orgs"].values()]


@contextmanager
def gateways_paused(state_dir: Path) -> Iterator[None]:
    """Stop the REST gateways of the test network while the contract tests drive payments themselves.

    Their followers would otherwise complete, reject and refund the test's payments first. They
    restart afterwards and catch up from their checkpoints.
    """
    stopped = [
        (home, spec)
        for home in org_homes(state_dir)
        for spec in processes.load_specs(home)
        if spec.kind == "gateway" and processes.stop(home, spec.name)
    ]
    try:
        yield
    finally:
        for home, spec in stopped:
            processes.start(home, spec)
        for home, spec in stopped:
            processes.wait_healthy(home, [spec], timeout=60)


@contextmanager
def altered_chaincode(state_dir: Path, msp_id: str) -> Iterator[None]:
    """Run ``msp_id``'s deposit-token chaincode server with the rogue contract, then restore it."""
    name = f"cc.{CHAINCODE}.{msp_id}"
    home = org_home(state_dir, msp_id)
    honest = next(spec for spec in processes.load_specs(home) if spec.name == name)
    command = [
        part
        if "DepositTokenContract" not in part
        else "tests.integration.rogue_deposit_token:RogueDepositTokenContract"
        for part in honest.command
    ]
    rogue = processes.NodeSpec(**{**honest.__dict__, "command": command})
    processes.stop(home, name)
    processes.start(home, rogue)
    try:
        processes.wait_healthy(home, [rogue], timeout=60)
        yield
    finally:
        processes.stop(home, name)
        processes.start(home, honest)
        processes.wait_healthy(home, [honest], timeout=60)
