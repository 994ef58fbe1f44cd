"""The client-driven workloads: what one operation of each does.

- ``ceiling``: ``conformance.PutState`` of a unique key (one blind write), spread over the banks' peers.
  The most this network commits on this machine: the yardstick for the others.
- ``private``: ``conformance.PutPrivate`` of a unique key in the caller's ``books-<MSP>`` collection
  (one blind private write): what private data alone costs, the floor under every workload that keeps
  customer data private. The ratios stay against ``ceiling``; this one explains them.
- ``transfer``: ``deposit_token.Transfer`` between two accounts of one bank, spread over the banks.
- ``hot``: ``Transfer`` from many payers to one merchant account (credits are blind writes, so none
  may conflict).
- ``interbank``: ``InitiatePayment`` at the payer's bank, then ``CompletePayment`` at the payee's
  bank, timed from the initiation's due time until the completion is committed on the payee's peer.
  The completion is submitted by the bench as soon as the payee's peer has committed the initiation
  (``completer="bench"``), or left to the payee bank's REST gateway, whose event follower completes it
  (``completer="gateway"``); then the bench only watches for ``PaymentCompleted``.
- ``escrow``: ``LockEscrow`` (buyer and payee at one bank, released by the buyer), then, once the lock
  is committed, ``ReleaseEscrow`` of the whole amount; timed from the lock's due time until the
  release is committed.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fabric_client import GatewayError, GroupCommit, Overloaded

from bench.books import CURRENCY, Books
from bench.load import (
    CLIENT_ERROR,
    OK,
    REFUSED,
    VALID,
    Account,
    AccountPool,
    Driver,
    Operation,
    Tracker,
    backoff,
    commit_outcome,
    error_outcome,
)
from bench.watch import PaymentWatcher
from chaincode.deposit_token.collections import books_collection
from chaincode.deposit_token.ledger import iso

AMOUNT = 100  # 1.00 USD per transfer or payment
PAYER_WAIT = 10.0  # seconds an operation may wait for an idle payer account before it gives up
COMPLETE_ATTEMPTS = 8
# A second step (completion, release) goes ahead of new operations for a place in the bound on
# submissions in flight and waits for one (FOLLOW_UP_WAIT). Refused even so, it is tried again this
# often at most: its first step is committed, so giving up early would leave an operation half done.
SECOND_STEP_REFUSALS = 12
# Completions go to the ledger in groups, as the payee banks' gateways send them (decision 0037):
# at most this many per CompletePayments transaction, this many such transactions in flight per bank.
COMPLETION_GROUP = 50
COMPLETION_GROUPS_IN_FLIGHT = 5
# Seconds a group's submitter waits to see its commit; past that its payments count as not drained.
GROUP_COMMIT_WAIT = 60.0
# Initiations go in groups too, as the payer banks' gateways send them (decision 0038): at most this
# many per InitiatePayments transaction, this many such transactions in flight per payer bank.
INITIATION_GROUP = 50
INITIATION_GROUPS_IN_FLIGHT = 2
# Rounds of one initiation group: a ``group_refused`` names the refused items, the rest goes again.
INITIATION_ROUNDS = 3
# Payments a payer bank may have waiting for, or in, an initiation group at once: one more is refused
# at once (``Overloaded``), as a gateway's write cap answers 503. A group is one transaction in the
# connection's bound on submissions in flight, so without this nothing would bound the payments
# queued behind the groups: offered twice what it commits, they would wait until they time out.
MAX_OPEN_INITIATIONS = 64
OPEN_INITIATIONS_RETRY_AFTER = 1.0


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    transactions_per_operation: int
    operation: Operation
    notes: str = ""


Watch = Mapping[str, Callable[[int, float], None]]


def ceiling(driver: Driver, banks: list[str], run_id: str) -> Workload:
    def submit(org: str, i: int, watch: Watch) -> None:
        driver.submit(org, "conformance", "PutState", f"bench-{run_id}-{i}", "v", watch=watch)

    return _blind_writes(banks, "ceiling", "conformance PutState (blind write of a unique key)", submit)


def private_ceiling(driver: Driver, banks: list[str], run_id: str) -> Workload:
    def submit(org: str, i: int, watch: Watch) -> None:
        driver.submit(
            org, "conformance", "PutPrivate", books_collection(org), f"bench-{run_id}-{i}",
            transient={"value": b"v"}, watch=watch,
        )  # fmt: skip

    title = "conformance PutPrivate (blind write of a unique key in the bank's books)"
    return _blind_writes(banks, "private", title, submit)


def _blind_writes(banks: list[str], name: str, title: str, submit: Callable[[str, int, Watch], None]) -> Workload:
    """One unique-key write per operation, spread over the banks' peers: the yardstick workloads."""
    counter = itertools.count()

    def operation(tracker: Tracker, due: float) -> None:
        i = next(counter)
        org = banks[i % len(banks)]

        def committed(code: int, at: float) -> None:
            tracker.transaction(code)
            tracker.finish(commit_outcome(code), due, at)

        try:
            submit(org, i, {org: committed})
        except Overloaded:
            raise  # the load generator backs off and tries again (load.py)
        except GatewayError as error:
            tracker.finish(*_failed(error, due))

    return Workload(name, title, 1, operation)


def _failed(error: Exception, due: float) -> tuple[str, float, float, str]:
    outcome, text = error_outcome(error)
    return outcome, due, time.time(), text


def _take(pool: AccountPool, tracker: Tracker, due: float) -> Account | None:
    payer = pool.take(PAYER_WAIT)
    if payer is None:
        tracker.finish(CLIENT_ERROR, due, time.time(), "no idle payer account (pool too small)")
    return payer


def transfers(
    driver: Driver,
    books: Books,
    pools: Mapping[str, AccountPool],
    banks: list[str],
    run_id: str,
    *,
    hot: bool = False,
) -> Workload:
    counter = itertools.count()
    merchant = books.merchant
    if hot and merchant is None:
        raise ValueError("the hot-merchant workload needs a merchant account")
    step_banks = [merchant.bank] if hot and merchant is not None else banks
    prefix = "hot" if hot else "tr"

    def operation(tracker: Tracker, due: float) -> None:
        i = next(counter)
        bank = step_banks[i % len(step_banks)]
        pool = pools[bank]
        payer = _take(pool, tracker, due)
        if payer is None:
            return
        if hot and merchant is not None:
            payee = merchant
        else:
            payees = books.payees[bank]
            payee = payees[(i // len(step_banks)) % len(payees)]
        request = {
            "from_account": payer.account_id,
            "to_account": payee.account_id,
            "currency": CURRENCY,
            "amount": AMOUNT,
            "transfer_id": f"bench-{run_id}-{prefix}{i}",
        }

        def committed(code: int, at: float) -> None:
            pool.give_back(payer)
            tracker.transaction(code)
            tracker.finish(commit_outcome(code), due, at)

        try:
            _, result = driver.submit(bank, "deposit_token", "Transfer", request=request, watch={bank: committed})
        except Overloaded:
            pool.give_back(payer)
            raise
        except GatewayError as error:
            pool.give_back(payer)
            tracker.finish(*_failed(error, due))
            return
        if not json.loads(result or b"{}").get("transferred"):
            tracker.note("transfer answered transferred=false")

    if hot:
        return Workload(
            "hot",
            "hot merchant: Transfer from many payers to one account",
            1,
            operation,
            notes=f"all payers and the merchant at {step_banks[0]}",
        )
    return Workload("transfer", "intra-bank Transfer", 1, operation)


class ItemRefused(Exception):
    """The contract refused one item of a group: a completion in ``CompletePayments``' results, an
    initiation named by ``InitiatePayments``' ``group_refused``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"[{reason}] {message}")
        self.reason = reason


class CompletionGroups:
    """Each payee bank's completions, submitted in groups as its gateway does (``fabric_client.GroupCommit``).

    ``complete`` blocks its (follow-up pool) thread until the group holding the payment has
    committed on the payee's peer, and returns when: one ``CompletePayment`` for a payment alone,
    one ``CompletePayments`` for several. A payment still counts as two transactions in the
    figures whatever its group (docs/benchmarks.md), so runs before and after grouping compare.
    """

    def __init__(self, driver: Driver, banks: list[str], max_group: int = COMPLETION_GROUP) -> None:
        self.driver = driver
        self._groups = {
            bank: GroupCommit(partial(self._submit, bank), max_group=max_group, in_flight=COMPLETION_GROUPS_IN_FLIGHT)
            for bank in banks
        }
        # The asks for details, per payee bank (the client) and payer bank (the peer asked), grouped too.
        self._asks = {
            (payee, payer): GroupCommit(
                partial(self._ask, payee, payer), max_group=max_group, in_flight=COMPLETION_GROUPS_IN_FLIGHT
            )
            for payee in banks
            for payer in banks
            if payee != payer
        }

    def details(self, payee_bank: str, payer_bank: str, payment_id: str) -> dict[str, Any]:
        """``GetPaymentDetails`` of the payment on the payer bank's peer, asked with others when they wait."""
        return self._asks[(payee_bank, payer_bank)].run(payment_id)

    def complete(self, payee_bank: str, request: dict[str, Any]) -> tuple[int, float] | None:
        """The commit (validation code, when seen) of the completion; None if not seen in time."""
        return self._groups[payee_bank].run(request)

    def _ask(self, payee_bank: str, payer_bank: str, ids: list[str]) -> list[dict[str, Any] | BaseException]:
        contract = self.driver.clients[payee_bank].contract("deposit_token")
        if len(ids) == 1:
            try:
                raw = contract.evaluate_transaction("GetPaymentDetails", ids[0], endorsing_organizations=[payer_bank])
            except GatewayError as error:
                return [error]
            return [json.loads(raw)]
        raw = contract.evaluate_transaction(
            "GetPaymentsDetails", json.dumps({"payment_ids": ids}), endorsing_organizations=[payer_bank]
        )
        return [
            item if "error" not in item else ItemRefused(item["error"]["code"], item["error"]["message"])
            for item in json.loads(raw)["details"]
        ]

    def _submit(self, bank: str, requests: list[dict[str, Any]]) -> list[tuple[int, float] | BaseException | None]:
        seen: list[tuple[int, float]] = []
        committed = threading.Event()

        def on_commit(code: int, at: float) -> None:
            seen.append((code, at))
            committed.set()

        alone = len(requests) == 1
        _, raw = self.driver.submit(
            bank,
            "deposit_token",
            "CompletePayment" if alone else "CompletePayments",
            request=requests[0] if alone else {"payments": requests},
            watch={bank: on_commit},
            follow_up=True,
        )
        commit = seen[0] if committed.wait(GROUP_COMMIT_WAIT) else None
        if alone:
            return [commit]
        outcomes: list[tuple[int, float] | BaseException | None] = []
        for result in json.loads(raw)["results"]:
            error = result.get("error")
            outcomes.append(commit if error is None else ItemRefused(error["code"], error["message"]))
        return outcomes


class InitiationGroups:
    """Each payer bank's initiations, submitted in groups as its gateway does (decision 0038).

    ``initiate`` blocks its worker until the group holding the request has committed on the payer's
    peer (so that a group holds its place while in flight, as the gateway's do) and returns the
    item's answer; the request's own ``watch`` callbacks fire from the watchers as for a
    transaction of its own. A group of one is a plain ``InitiatePayment``. The contract refuses a
    group with any refused item and names each: those raise ``ItemRefused``, the rest goes
    again. ``Overloaded`` and other failures of the group reach every item of it.
    """

    def __init__(self, driver: Driver, banks: list[str], max_group: int = INITIATION_GROUP) -> None:
        self.driver = driver
        self._groups = {
            bank: GroupCommit(partial(self._submit, bank), max_group=max_group, in_flight=INITIATION_GROUPS_IN_FLIGHT)
            for bank in banks
        }
        self._open = dict.fromkeys(banks, 0)
        self._open_lock = threading.Lock()

    def initiate(self, payer_bank: str, request: dict[str, Any], watch: Watch) -> dict[str, Any]:
        """The item's answer once its group committed; ``Overloaded`` at once (nothing sent) when
        ``MAX_OPEN_INITIATIONS`` of the bank's payments are already waiting or in flight."""
        with self._open_lock:
            open_now = self._open[payer_bank]
            if open_now >= MAX_OPEN_INITIATIONS:
                raise Overloaded(
                    f"{payer_bank} has {open_now} payments waiting for or in an initiation group",
                    limit=MAX_OPEN_INITIATIONS, in_flight=open_now, retry_after=OPEN_INITIATIONS_RETRY_AFTER,
                )  # fmt: skip
            self._open[payer_bank] = open_now + 1
        try:
            answer: dict[str, Any] = self._groups[payer_bank].run((request, watch))
        finally:
            with self._open_lock:
                self._open[payer_bank] -= 1
        return answer

    def _submit(
        self, bank: str, items: list[tuple[dict[str, Any], Watch]]
    ) -> list[dict[str, Any] | BaseException]:
        outcomes: list[dict[str, Any] | BaseException | None] = [None] * len(items)
        waiting = list(range(len(items)))
        for _ in range(INITIATION_ROUNDS):
            group = [items[i] for i in waiting]
            try:
                answers = self._send(bank, group)
            except GatewayError as error:
                refused = _group_refusals(error, len(group))
                if refused is None:
                    for i in waiting:
                        outcomes[i] = error
                    return [outcome if outcome is not None else error for outcome in outcomes]
                for position, refusal in refused.items():
                    outcomes[waiting[position]] = refusal
                waiting = [i for position, i in enumerate(waiting) if position not in refused]
                if not waiting:
                    break
                continue
            for i, answer in zip(waiting, answers, strict=True):
                outcomes[i] = answer
            waiting = []
            break
        unjudged = ItemRefused("group_refused", "still refused after every round")
        return [outcome if outcome is not None else unjudged for outcome in outcomes]

    def _send(self, bank: str, group: list[tuple[dict[str, Any], Watch]]) -> list[dict[str, Any]]:
        """Submit one group and wait for its commit on the payer's peer; each item's answer."""
        committed = threading.Event()

        def fan_out(org: str) -> Callable[[int, float], None]:
            def callback(code: int, at: float) -> None:
                for _, watch in group:
                    if org in watch:
                        watch[org](code, at)
                if org == bank:
                    committed.set()

            return callback

        orgs = {bank, *(org for _, watch in group for org in watch)}
        alone = len(group) == 1
        _, raw = self.driver.submit(
            bank,
            "deposit_token",
            "InitiatePayment" if alone else "InitiatePayments",
            request=group[0][0] if alone else {"payments": [request for request, _ in group]},
            watch={org: fan_out(org) for org in orgs},
        )
        committed.wait(GROUP_COMMIT_WAIT)  # past it the step counts its payments as not drained
        answer = json.loads(raw)
        answers: list[dict[str, Any]] = [answer] if alone else answer["results"]
        return answers


def _group_refusals(error: GatewayError, size: int) -> dict[int, ItemRefused] | None:
    """The items a refused ``InitiatePayments`` names (``[group_refused] {"refused": [...]}``), by position."""
    text = getattr(error, "chaincode_message", None) or str(error)
    start = text.find("[group_refused] ")
    if start < 0:
        return None
    try:
        listed, _ = json.JSONDecoder().raw_decode(text, start + len("[group_refused] "))
        found = {int(item["position"]): ItemRefused(item["code"], item["message"]) for item in listed["refused"]}
    except (ValueError, KeyError, TypeError):
        return None
    return found if found and all(0 <= position < size for position in found) else None


def interbank(
    driver: Driver,
    books: Books,
    pools: Mapping[str, AccountPool],
    banks: list[str],
    run_id: str,
    *,
    completer: str,
    payment_watchers: Mapping[str, PaymentWatcher] | None = None,
    completion_group: int = COMPLETION_GROUP,
    initiation_group: int = INITIATION_GROUP,
) -> Workload:
    if len(banks) < 2:
        raise ValueError("interbank payments need two banks")
    if completer == "gateway" and not payment_watchers:
        raise ValueError("completion by the gateways needs payment watchers")
    counter = itertools.count()
    n = len(banks)
    completions = CompletionGroups(driver, banks, completion_group)
    initiations = InitiationGroups(driver, banks, initiation_group)

    def operation(tracker: Tracker, due: float) -> None:
        i = next(counter)
        payer_bank = banks[i % n]
        # Every ordered pair of banks in turn.
        payee_bank = banks[(i + 1 + (i // n) % (n - 1)) % n]
        pool = pools[payer_bank]
        payer = _take(pool, tracker, due)
        if payer is None:
            return
        payees = books.payees[payee_bank]
        payee = payees[(i // n) % len(payees)]
        request = {
            "idempotency_key": f"bench-{run_id}-ib{i}",
            "payer_account": payer.account_id,
            "payee_bank": payee_bank,
            "payee_account": payee.account_id,
            "currency": CURRENCY,
            "amount": AMOUNT,
        }
        payment: dict[str, str] = {}
        ready = threading.Event()  # the payment id is known (set once submit returned)

        def initiation_committed(code: int, at: float) -> None:
            pool.give_back(payer)
            tracker.transaction(code)
            if code != VALID:
                tracker.finish(commit_outcome(code), due, at)

        def completion_committed(code: int, at: float) -> None:
            tracker.transaction(code)
            tracker.finish(commit_outcome(code), due, at)

        def complete(attempt: int, refusals: int = 0) -> None:
            ready.wait(30)
            try:
                # As the payee bank's gateway does: the details from the payer bank's peer (no
                # collection is shared by the two banks, docs/decisions/0036), then the completion.
                if completion_group == 1:  # each on its own, as many at once as the workers submit
                    raw = driver.clients[payee_bank].contract("deposit_token").evaluate_transaction(
                        "GetPaymentDetails", payment["id"], endorsing_organizations=[payer_bank]
                    )
                    given = json.loads(raw)
                    driver.submit(
                        payee_bank, "deposit_token", "CompletePayment",
                        request={"payment_id": payment["id"], "details": given["details"], "salt": given["salt"]},
                        watch={payee_bank: completion_committed}, follow_up=True,
                    )  # fmt: skip
                    return
                given = completions.details(payee_bank, payer_bank, payment["id"])
                completion = {"payment_id": payment["id"], "details": given["details"], "salt": given["salt"]}
                commit = completions.complete(payee_bank, completion)
                if commit is not None:  # else not seen in time: the step counts it as not drained
                    completion_committed(*commit)
            except Overloaded as refused:
                if refusals < SECOND_STEP_REFUSALS:
                    tracker.note("refused attempts")
                    driver.run_after(
                        backoff(refused, refusals + 1), lambda: complete(attempt, refusals + 1), follow_up=True
                    )
                    return
                tracker.finish(REFUSED, due, time.time(), "completion refused: overloaded")
            except (GatewayError, ItemRefused) as error:
                # The payer's peer may not have committed the payment yet when the payee's peer has
                # (each commits on its own): asked too early, it says so; try again shortly.
                early = error.reason in ("invalid_state", "payment_not_found", "details_not_here")
                if early and attempt < COMPLETE_ATTEMPTS:
                    tracker.note("completion retried")
                    driver.run_after(0.1 * attempt, lambda: complete(attempt + 1), follow_up=True)
                    return
                tracker.finish(*_failed(error, due))

        def initiation_seen_by_payee(code: int, at: float) -> None:
            if code == VALID:
                driver.run_later(lambda: complete(1), follow_up=True)

        watch = {payer_bank: initiation_committed}
        if completer == "bench":
            watch[payee_bank] = initiation_seen_by_payee
        try:
            if initiation_group == 1:  # each on its own, as many at once as the workers submit
                _, raw = driver.submit(payer_bank, "deposit_token", "InitiatePayment", request=request, watch=watch)
                answer = json.loads(raw)
            else:
                answer = initiations.initiate(payer_bank, request, watch)
        except Overloaded:
            pool.give_back(payer)
            raise
        except (GatewayError, ItemRefused) as error:
            pool.give_back(payer)
            tracker.finish(*_failed(error, due))
            return
        payment["id"] = str(answer["payment_id"])
        ready.set()
        if completer == "gateway" and payment_watchers is not None:

            def completed(at: float) -> None:
                tracker.transaction(VALID)
                tracker.finish(OK, due, at)

            payment_watchers[payee_bank].expect(payment["id"], completed)

    who = "the bench (client)" if completer == "bench" else "the payee bank's REST gateway follower"
    return Workload(
        "interbank",
        "interbank payment, InitiatePayment + CompletePayment",
        2,
        operation,
        notes=f"completed by {who}",
    )


def escrows(driver: Driver, books: Books, pools: Mapping[str, AccountPool], banks: list[str], run_id: str) -> Workload:
    """Lock then release: what one escrow costs end to end (two transactions on the payer's peer)."""
    counter = itertools.count()

    def operation(tracker: Tracker, due: float) -> None:
        i = next(counter)
        bank = banks[i % len(banks)]
        pool = pools[bank]
        payer = _take(pool, tracker, due)
        if payer is None:
            return
        payees = books.payees[bank]
        payee = payees[(i // len(banks)) % len(payees)]
        expires = iso(datetime.now(UTC) + timedelta(hours=1))
        lock = {
            "idempotency_key": f"bench-{run_id}-es{i}", "payer_account": payer.account_id, "payee_bank": bank,
            "payee_account": payee.account_id, "currency": CURRENCY, "amount": AMOUNT, "release_by": "buyer",
            "expires_at": expires, "on_expiry": "refund",
        }  # fmt: skip
        escrow: dict[str, str] = {}
        ready = threading.Event()

        def released(code: int, at: float) -> None:
            tracker.transaction(code)
            tracker.finish(commit_outcome(code), due, at)

        def release(refusals: int = 0) -> None:
            ready.wait(30)
            request = {"escrow_id": escrow["id"], "release_id": "all", "amount": AMOUNT, "by": "buyer"}
            try:
                driver.submit(
                    bank, "deposit_token", "ReleaseEscrow", request=request, watch={bank: released}, follow_up=True
                )
            except Overloaded as refused:
                if refusals < SECOND_STEP_REFUSALS:
                    tracker.note("refused attempts")
                    driver.run_after(backoff(refused, refusals + 1), lambda: release(refusals + 1), follow_up=True)
                    return
                tracker.finish(REFUSED, due, time.time(), "release refused: overloaded")
            except GatewayError as error:
                tracker.finish(*_failed(error, due))

        def locked(code: int, at: float) -> None:
            pool.give_back(payer)
            tracker.transaction(code)
            if code != VALID:
                tracker.finish(commit_outcome(code), due, at)
                return
            driver.run_later(release, follow_up=True)

        try:
            _, result = driver.submit(bank, "deposit_token", "LockEscrow", request=lock, watch={bank: locked})
        except Overloaded:
            pool.give_back(payer)
            raise
        except GatewayError as error:
            pool.give_back(payer)
            tracker.finish(*_failed(error, due))
            return
        escrow["id"] = str(json.loads(result)["escrow_id"])
        ready.set()

    return Workload("escrow", "escrow: LockEscrow, then ReleaseEscrow of the whole amount", 2, operation)
