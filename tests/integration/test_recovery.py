"""Recovery on the real network: no head-of-line blocking, bounded waits after the Raft leader dies,
one problem code per failure, honest readiness, no keep-alive GOAWAYs.

Every node a test kills is restarted before it ends. Times are printed as figures for the record,
never asserted: this machine is shared.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from network import processes
from network.consortium import Consortium
from network.processes import NodeSpec
from network.topology import load_topology
from tests.integration.bank_api_support import BankGateway, Merchant, gateways_of, unique, wait_for
from tests.integration.conftest import BASE_PORT, STATE_DIR, network_cli
from tests.integration.deposit_token_support import Consortium as Clients
from tests.integration.deposit_token_support import org_home, org_homes

pytestmark = pytest.mark.network

US, HK, SG = "USBankMSP", "HKBankMSP", "SGBankMSP"


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    found = gateways_of(network)
    for bank in found.values():
        assert wait_for(bank.ready, timeout=120), f"{bank.msp_id} gateway is not ready"
    return found


@pytest.fixture(scope="module")
def net(network: dict[str, Any]) -> Consortium:
    return Consortium(load_topology(), STATE_DIR, BASE_PORT, progress=lambda _m: None)


def _figures(capsys: pytest.CaptureFixture[str], lines: list[str]) -> None:
    with capsys.disabled():
        print("\n" + "\n".join(f"    [figure] {line}" for line in lines))


def _ready_code(bank: BankGateway) -> str:
    """'ready', or the problem code /readyz answers with."""
    try:
        response = requests.get(bank.url + "/readyz", timeout=10)
    except requests.RequestException:
        return "no answer"
    return "ready" if response.status_code == 200 else str(response.json().get("code"))


def _readyz(bank: BankGateway) -> dict[str, Any]:
    try:
        body: dict[str, Any] = requests.get(bank.url + "/readyz", timeout=10).json()
    except (requests.RequestException, ValueError):
        return {}
    return body


def _status(bank: BankGateway, payment_id: str, merchant: Merchant) -> str:
    try:
        return str(bank.payment(payment_id, merchant.headers)["status"])
    except (AssertionError, requests.RequestException):
        return "unknown"


def _credited(bank: BankGateway, merchant: Merchant, payment_id: str) -> int:
    history = bank.get(f"/v1/accounts/{merchant.account_id}/history", merchant.headers).json()["entries"]
    return sum(1 for e in history if e["kind"] == "payment_in" and e["payment_id"] == payment_id)


# -- 1. a stuck completion holds up nothing else ------------------------------------------------------


@dataclass
class FaultyGateway:
    """The bank's gateway run with fault injection (gateway/bank_api/faults.py), then the real one again."""

    home: Path
    honest: NodeSpec
    fault_file: Path
    faulty: bool = False

    def start(self) -> None:
        env = {**self.honest.env, "BANK_API_FAULT_FILE": str(self.fault_file)}
        faulty = NodeSpec(**{**self.honest.__dict__, "env": env})
        processes.stop(self.home, self.honest.name)
        processes.start(self.home, faulty)
        self.faulty = True
        processes.wait_healthy(self.home, [faulty], timeout=60)

    def hold_completions_to(self, *accounts: str) -> None:
        self.fault_file.write_text(json.dumps({"hold_completions_to": list(accounts)}))

    def restore(self) -> None:
        self.fault_file.unlink(missing_ok=True)
        processes.stop(self.home, self.honest.name)
        processes.start(self.home, self.honest)
        self.faulty = False
        processes.wait_healthy(self.home, [self.honest], timeout=60)


@pytest.fixture
def faulty_hk(tmp_path: Path) -> Iterator[FaultyGateway]:
    home = org_home(STATE_DIR, HK)
    honest = next(spec for spec in processes.load_specs(home) if spec.name == f"gateway.{HK}")
    gateway = FaultyGateway(home, honest, tmp_path / "faults.json")
    gateway.start()
    try:
        yield gateway
    finally:
        if gateway.faulty:
            gateway.restore()


def _checkpoint(bank: dict[str, Any]) -> int:
    database = Path(bank["operator_key_file"]).parent / "bank_api.sqlite"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT block_number FROM event_checkpoints WHERE name = 'deposit_token'").fetchone()
    return int(row[0]) if row else 0


def _block_of(clients: Clients, msp_id: str, transaction_id: str) -> int:
    ledger = clients[msp_id].gateway.get_network("tokens").get_ledger()
    return int(ledger.block_by_transaction_id(transaction_id).header.number)


def test_a_stuck_completion_holds_up_no_other_payment_and_survives_a_restart(
    network: dict[str, Any],
    banks: dict[str, BankGateway],
    faulty_hk: FaultyGateway,
    capsys: pytest.CaptureFixture[str],
) -> None:
    us, hk = banks[US], banks[HK]
    assert wait_for(hk.ready, timeout=60)
    buyer = us.open_account("Stuck Test Buyer", "US")
    us.issue(buyer.account_id, "USD", "50.00")
    held = hk.open_account("Held Supplier", "HK")
    others = [hk.open_account(f"Free Supplier {n}", "HK") for n in range(3)]
    faulty_hk.hold_completions_to(held.account_id)

    paid = us.pay(buyer, HK, held.account_id, "USD", "5.00", unique("held"))
    assert paid.status_code == 201, paid.text
    stuck = paid.json()["payment_id"]
    started = time.monotonic()
    free = []
    for n in range(6):
        response = us.pay(buyer, HK, others[n % 3].account_id, "USD", "1.00", unique("free"))
        assert response.status_code == 201, response.text
        free.append(response.json()["payment_id"])
    assert wait_for(lambda: all(_status(us, p, buyer) == "completed" for p in free), timeout=120), [
        _status(us, p, buyer) for p in free
    ]
    others_done = time.monotonic() - started
    assert _status(us, stuck, buyer) == "initiated"  # held all along, and nobody waited for it

    # The follower's checkpoint moved past the held payment's event.
    clients = Clients(STATE_DIR / "profile.json")
    try:
        tx_id = us.payment(stuck, buyer.headers)["timeline"][0]["tx_id"]
        stuck_block = _block_of(clients, HK, tx_id)
    finally:
        clients.close()
    hk_profile = network["orgs"][HK]
    assert wait_for(lambda: _checkpoint(hk_profile) > stuck_block, timeout=30), (_checkpoint(hk_profile), stuck_block)

    # The gateway dies while the completion is held; the real one starts on the same database and
    # completes it: the task was neither lost (the checkpoint is past its event) nor repeated.
    processes.stop(faulty_hk.home, faulty_hk.honest.name, sig=signal.SIGKILL)
    faulty_hk.restore()
    restarted = time.monotonic()
    assert wait_for(lambda: _status(us, stuck, buyer) == "completed", timeout=120)
    _figures(
        capsys,
        [
            f"6 payments completed {others_done:.1f} s after the first, while another completion was held",
            f"held completion done {time.monotonic() - restarted:.1f} s after the gateway restarted",
        ],
    )
    assert hk.balances(held) == {"USD": "5.00"}
    assert _credited(hk, held, stuck) == 1
    assert us.balances(buyer) == {"USD": "39.00"}


# -- 2. the Raft leader dies with payments flowing ------------------------------------------------


@dataclass
class Sent:
    flow: int
    payer: int
    key: str
    started: float
    accepted: float | None = None
    completed: float | None = None
    payment_id: str | None = None
    codes: list[str] = field(default_factory=list)
    error: str | None = None


class PaymentLoad:
    """Interbank payments at a steady rate, round robin over flows (payer bank, payers, payee bank, payee)
    and over each flow's payers.

    Each payment keeps its Idempotency-Key and is retried while the gateway answers 503 (after its
    Retry-After) or cannot be reached, as a well-behaved client does; completions are watched.
    """

    def __init__(self, flows: list[tuple[BankGateway, list[Merchant], str, str]], rate: float) -> None:
        self.flows = flows
        self.interval = 1.0 / rate
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(24)
        self._threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._threads[0].join()
        self._pool.shutdown(wait=True)

    def wait_completed(self, timeout: float) -> bool:
        done = wait_for(lambda: all(s.completed is not None for s in self.sent if s.error is None), timeout=timeout)
        self._threads[1].join(timeout=5)
        return bool(done)

    def _send(self) -> None:
        n = 0
        while not self._stop.is_set():
            flow = n % len(self.flows)
            payer = (n // len(self.flows)) % len(self.flows[flow][1])
            record = Sent(flow, payer, unique("load"), time.monotonic())
            with self._lock:
                self.sent.append(record)
            self._pool.submit(self._pay, record)
            n += 1
            self._stop.wait(self.interval)

    def _pay(self, record: Sent) -> None:
        payer_bank, payers, payee_bank, payee = self.flows[record.flow]
        payer = payers[record.payer]
        deadline = record.started + 150
        while time.monotonic() < deadline:
            try:
                response = payer_bank.pay(payer, payee_bank, payee, "USD", "1.00", record.key)
            except requests.RequestException:
                record.codes.append("no answer")
                time.sleep(1)
                continue
            if response.status_code == 201:
                record.payment_id = response.json()["payment_id"]
                record.accepted = time.monotonic()
                return
            code = response.json().get("code", str(response.status_code))
            record.codes.append(code)
            if response.status_code in (503, 409) and code in {
                "peer_unreachable",
                "chaincode_unavailable",
                "counterparty_unreachable",
                "contention",
                "ordering_unavailable",
                "ledger_unavailable",
                "idempotency_in_progress",
                "overloaded",
            }:
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))
                continue
            record.error = f"{response.status_code} {code}"
            return
        record.error = "not accepted within 150 s"

    def _watch(self) -> None:
        while True:
            with self._lock:
                waiting = [s for s in self.sent if s.payment_id and s.completed is None]
                finished = self._stop.is_set() and all(
                    s.completed is not None or s.error is not None for s in self.sent
                )
            if finished:
                return
            for record in waiting:
                payer_bank, payers, _, _ = self.flows[record.flow]
                assert record.payment_id is not None
                if _status(payer_bank, record.payment_id, payers[record.payer]) == "completed":
                    record.completed = time.monotonic()
            time.sleep(0.3)


def test_payments_resume_within_seconds_of_the_raft_leader_dying(
    banks: dict[str, BankGateway], net: Consortium, capsys: pytest.CaptureFixture[str]
) -> None:
    us, hk, sg = banks[US], banks[HK], banks[SG]

    # Several payers per flow, as in real traffic: the debits of one account are serialised (one per
    # block), and a single hot payer's read conflicts are not what this test is about.
    def payers(bank: BankGateway, jurisdiction: str, flow: str) -> list[Merchant]:
        found = [bank.open_account(f"Leader Test Payer {flow}{n}", jurisdiction) for n in range(4)]
        for payer in found:
            bank.issue(payer.account_id, "USD", "100.00")
        return found

    hk_shop = hk.open_account("Leader Test HK Shop", "HK")
    sg_shop = sg.open_account("Leader Test SG Shop", "SG")
    flows = [
        (us, payers(us, "US", "a"), HK, hk_shop.account_id),
        (us, payers(us, "US", "b"), SG, sg_shop.account_id),
        (hk, payers(hk, "HK", "c"), SG, sg_shop.account_id),
    ]
    load = PaymentLoad(flows, rate=4.0)
    load.start()
    leader = None
    try:
        time.sleep(8)
        leader = net.wait_raft_leader()
        fault = time.monotonic()
        net.kill_node(leader)
        new_leader = net.wait_raft_leader(timeout=60)
        elected = time.monotonic() - fault
        assert new_leader != leader
        time.sleep(20)
    finally:
        if leader is not None:
            net.start_node(leader)
        time.sleep(4)
        load.stop()
    assert load.wait_completed(timeout=180), [(s.key, s.codes, s.error) for s in load.sent if s.completed is None]
    failed = [(s.key, s.codes, s.error) for s in load.sent if s.error is not None]
    assert not failed, failed

    sent = load.sent
    latency = {s.key: (s.completed or 0.0) - s.started for s in sent}
    done_after = [(s.completed or 0.0) - fault for s in sent if s.started >= fault]
    in_flight = [s for s in sent if s.started < fault < (s.completed or 0.0)]
    worst = max(latency.values())
    worst_in_flight = max((latency[s.key] for s in in_flight), default=0.0)
    answers = [code for s in sent for code in s.codes]
    _figures(
        capsys,
        [
            f"{len(sent)} payments at 4/s over 3 flows of 4 payers each; {leader} (Raft leader) killed; "
            f"{new_leader} elected {elected:.1f} s later",
            f"fault to first completed payment started after it: {min(done_after):.1f} s",
            f"worst latency of a payment in flight at the fault: {worst_in_flight:.1f} s ({len(in_flight)} in flight)",
            f"worst request-to-completion latency overall: {worst:.1f} s",
            f"503 answers on the way: {({c: answers.count(c) for c in set(answers)}) or 'none'}",
        ],
    )
    clients = Clients(STATE_DIR / "profile.json")
    try:
        clients.assert_conserved()
    finally:
        clients.close()
    assert hk.balances(hk_shop)["USD"] == f"{sum(1 for s in sent if s.flow == 0)}.00"
    assert sg.balances(sg_shop)["USD"] == f"{sum(1 for s in sent if s.flow != 0)}.00"


# -- 3. each failure its own code; ready only when a payment can be made ---------------------------


def test_each_failure_has_its_own_code_and_readiness_follows_it(
    banks: dict[str, BankGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    us, hk = banks[US], banks[HK]
    buyer = us.open_account("Codes Buyer", "US")
    us.issue(buyer.account_id, "USD", "20.00")
    shop = hk.open_account("Codes Shop", "HK")
    figures = []

    def pay() -> requests.Response:
        return us.pay(buyer, HK, shop.account_id, "USD", "1.00", unique("codes"))

    # Our chaincode server down.
    network_cli("kill-node", f"cc.deposit_token.{US}")
    try:
        read = us.get(f"/v1/accounts/{buyer.account_id}", buyer.headers)
        assert (read.status_code, read.json()["code"]) == (503, "chaincode_unavailable"), read.text
        assert int(read.headers["Retry-After"]) > 0
        assert _ready_code(us) == "chaincode_unavailable"
    finally:
        network_cli("start-node", f"cc.deposit_token.{US}")
    assert wait_for(us.ready, timeout=60)

    # Our peer down, then restarted: not ready until a payment can go through, then it does.
    network_cli("kill-node", f"peer.{US}")
    try:
        read = us.get(f"/v1/accounts/{buyer.account_id}", buyer.headers)
        assert (read.status_code, read.json()["code"]) == (503, "peer_unreachable"), read.text
        assert int(read.headers["Retry-After"]) > 0
        assert _ready_code(us) == "peer_unreachable"
    finally:
        network_cli("start-node", f"peer.{US}")
    restarted = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - restarted < 120 and (code := _ready_code(us)) != "ready":
        if not seen or seen[-1] != code:
            seen.append(code)
        time.sleep(0.2)
    ready_after = time.monotonic() - restarted
    first = pay()
    assert first.status_code == 201, (seen, first.text)  # ready meant a payment goes through
    figures.append(f"peer restart to ready: {ready_after:.1f} s (not ready meanwhile as: {', '.join(seen) or '-'})")

    # The payee bank's peer down for a while: payments to it are accepted all the same (the payer's
    # peer endorses alone, decision 0031), the payer's gateway stays ready and names the bank it
    # does not see, and the payments complete once the peer is back; none is lost or paid twice.
    network_cli("kill-node", f"peer.{HK}")
    killed = time.monotonic()
    during: list[str] = []
    try:
        for _ in range(3):
            response = pay()
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "initiated"
            during.append(response.json()["payment_id"])
            time.sleep(3)
        out_of_sight = wait_for(lambda: "not HKBankMSP" in str(_readyz(us).get("checks", {}).get("channel")), 90, 0.5)
        assert out_of_sight, _readyz(us)
        assert _ready_code(us) == "ready"
        while time.monotonic() - killed < 30:  # an outage of half a minute at least
            time.sleep(1)
        # Nobody can complete them while HKBank's peer is down.
        assert {_status(us, payment_id, buyer) for payment_id in during} == {"initiated"}
    finally:
        network_cli("start-node", f"peer.{HK}")
    restarted = time.monotonic()
    figures.append(f"payee peer down {restarted - killed:.0f} s; {len(during)} payments to it accepted meanwhile")
    assert wait_for(lambda: all(_status(us, p, buyer) == "completed" for p in during), timeout=240, interval=1), [
        _status(us, p, buyer) for p in during
    ]
    figures.append(
        f"payee peer restart to every payment made during its outage completed: {time.monotonic() - restarted:.1f} s"
    )
    assert all(_credited(hk, shop, payment_id) == 1 for payment_id in during)
    assert wait_for(lambda: _ready_code(us) == "ready" and _ready_code(hk) == "ready", timeout=120)
    again = pay()
    assert again.status_code == 201, again.text
    _figures(capsys, figures)
    payments = [first.json()["payment_id"], again.json()["payment_id"]]
    assert wait_for(lambda: all(_status(us, p, buyer) == "completed" for p in payments), timeout=120)
    assert us.balances(buyer) == {"USD": "15.00"}  # 20.00 issued, five payments of 1.00 completed


def test_no_node_logged_a_keepalive_goaway(banks: dict[str, BankGateway]) -> None:
    """Run last: by now every peer's Gateway service has talked to the orderers and the other peers."""
    offenders = {}
    for home in org_homes(STATE_DIR):
        for log in sorted((home / "logs").glob("*.log")):
            if log.name.startswith(("peer.", "orderer")):
                count = log.read_text(errors="replace").count("too_many_pings")
                if count:
                    offenders[log.name] = count
    assert not offenders, offenders
