"""Corporate groups and standing orders on the real network, through USBank's REST gateway.

A daily sweep of a USBank account into the group's header account at HKBank runs once per period
although the gateway is killed at the due time, mid-run (held there by fault injection: claimed,
amount fixed, payment not yet made) and restarted; a daily payment that cannot be paid is recorded
with its reason and the next day's run is paid. "The next day" is a gateway restarted with its
scheduler's clock a day ahead (``standing_order_clock_offset_seconds``, test networks only), so
nothing waits a day. Each issuer's supply equals its book totals after every test.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from network import processes
from network.processes import NodeSpec
from tests.integration.bank_api_support import BankGateway, Merchant, ready_gateways, unique, wait_for
from tests.integration.conftest import ROOT, STATE_DIR, network_cli
from tests.integration.deposit_token_support import Consortium, org_home

pytestmark = pytest.mark.network

US, HK = "USBankMSP", "HKBankMSP"
DAY = 86400


@pytest.fixture(scope="module")
def banks(network: dict[str, Any]) -> dict[str, BankGateway]:
    return ready_gateways(network)


@pytest.fixture(scope="module")
def ledger(profile_path: Path) -> Iterator[Consortium]:
    consortium = Consortium(profile_path)
    yield consortium
    consortium.close()


@pytest.fixture(autouse=True)
def conserved(ledger: Consortium) -> Iterator[None]:
    yield
    ledger.assert_conserved_after()


@dataclass
class SchedulerGateway:
    """USBank's gateway with a 1 s sweeper pass, fault injection, and its scheduler's clock set per start."""

    bank: BankGateway
    home: Path
    honest: NodeSpec
    fault_file: Path
    changed: bool = False

    def start(self, offset_seconds: int = 0, *, hold_runs: bool = False, kill: bool = False) -> None:
        self.fault_file.write_text(json.dumps({"hold_standing_order_runs": hold_runs}))
        env = {
            **self.honest.env,
            "BANK_API_SWEEP_INTERVAL_SECONDS": "1",
            "BANK_API_FAULT_FILE": str(self.fault_file),
            "BANK_API_STANDING_ORDER_CLOCK_OFFSET_SECONDS": str(offset_seconds),
        }
        spec = NodeSpec(**{**self.honest.__dict__, "env": env})
        if kill:
            network_cli("kill-node", self.honest.name)  # SIGKILL: no chance to finish the run or tidy up
        processes.stop(self.home, self.honest.name)
        processes.start(self.home, spec)
        self.changed = True
        processes.wait_healthy(self.home, [spec], timeout=60)
        assert wait_for(self.bank.ready, timeout=60)

    def release_runs(self) -> None:
        self.fault_file.write_text(json.dumps({"hold_standing_order_runs": False}))

    def restore(self) -> None:
        self.fault_file.unlink(missing_ok=True)
        processes.stop(self.home, self.honest.name)
        processes.start(self.home, self.honest)
        self.changed = False
        processes.wait_healthy(self.home, [self.honest], timeout=60)
        assert wait_for(self.bank.ready, timeout=60)


@pytest.fixture
def scheduler(banks: dict[str, BankGateway], tmp_path: Path) -> Iterator[SchedulerGateway]:
    home = org_home(STATE_DIR, US)
    honest = next(spec for spec in processes.load_specs(home) if spec.name == f"gateway.{US}")
    gateway = SchedulerGateway(banks[US], home, honest, tmp_path / "faults.json")
    try:
        yield gateway
    finally:
        if gateway.changed:
            gateway.restore()


def _group(us: BankGateway, members: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    group_id = unique("grp")
    made = us.post("/v1/groups", {"group_id": group_id, "name": "Acme Group"})
    assert made.status_code == 201, made.text
    for bank, account in members:
        added = us.post(f"/v1/groups/{group_id}/accounts", {"bank": bank, "account_id": account})
        assert added.status_code == 201, added.text
    key = us.post(f"/v1/groups/{group_id}/api-keys", {"label": "treasurer"})
    assert key.status_code == 201, key.text
    return group_id, {"Authorization": f"Bearer {key.json()['api_key']}"}


def _runs(us: BankGateway, group_id: str, order_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = us.get(f"/v1/groups/{group_id}/standing-orders/{order_id}/runs", headers)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


def _debits(us: BankGateway, merchant: Merchant) -> list[dict[str, Any]]:
    entries = us.get(f"/v1/accounts/{merchant.account_id}/history", merchant.headers).json()["entries"]
    return [e for e in entries if e["kind"] == "payment_out"]


def _completed(us: BankGateway, payment_id: str) -> bool:
    return bool(us.payment(payment_id)["status"] == "completed")


def test_a_daily_sweep_across_two_banks_runs_once_per_period_across_a_restart_at_the_due_time(
    banks: dict[str, BankGateway], scheduler: SchedulerGateway
) -> None:
    us, hk = banks[US], banks[HK]
    ops = us.open_account("Acme US Operations", "US")
    header = hk.open_account("Acme Group Treasury", "HK")
    us.issue(ops.account_id, "USD", "100.00")
    group_id, treasurer = _group(us, [(US, ops.account_id), (HK, header.account_id)])

    # The gateway will claim the first run and stop there, before paying: then it is killed.
    scheduler.start(0, hold_runs=True)
    sweep = us.post(
        f"/v1/groups/{group_id}/standing-orders",
        {"kind": "sweep", "account": ops.account_id, "header_bank": HK, "header_account": header.account_id,
         "currency": "USD", "target_balance": "40.00", "every": "day"},
        {**treasurer, "Idempotency-Key": unique("sweep")},
    )  # fmt: skip
    assert sweep.status_code == 201, sweep.text
    order_id = sweep.json()["order_id"]
    claimed = wait_for(
        lambda: [r for r in _runs(us, group_id, order_id, treasurer) if r["amount"] is not None], timeout=60
    )
    assert [(r["status"], r["amount"]) for r in claimed] == [("pending", "60.00")]
    scheduler.start(0, kill=True)  # the restarted gateway resumes the run it finds pending
    first = wait_for(lambda: [r for r in _runs(us, group_id, order_id, treasurer) if r["status"] == "paid"])
    assert len(first) == 1, _runs(us, group_id, order_id, treasurer)
    assert wait_for(lambda: _completed(us, first[0]["payment_id"]), timeout=60)

    # The next day: a day's more receipts to sweep, the gateway restarted with its clock a day ahead,
    # then killed and restarted again at once.
    us.issue(ops.account_id, "USD", "25.00")
    scheduler.start(DAY)
    scheduler.start(DAY, kill=True)
    runs = wait_for(
        lambda: [r for r in _runs(us, group_id, order_id, treasurer) if r["status"] != "pending"][1:], timeout=60
    )
    assert runs, _runs(us, group_id, order_id, treasurer)
    runs = _runs(us, group_id, order_id, treasurer)
    assert [(r["status"], r["amount"], r["trigger"]) for r in runs] == [
        ("paid", "25.00", "schedule"),
        ("paid", "60.00", "schedule"),
    ]
    assert runs[0]["due_at"] > runs[1]["due_at"]
    assert wait_for(lambda: _completed(us, runs[0]["payment_id"]), timeout=60)
    # Exactly one payment per period: two debits of the swept account, and the header got both.
    assert sorted(d["amount"] for d in _debits(us, ops)) == ["-25.00", "-60.00"]
    assert sorted(d["payment_id"] for d in _debits(us, ops)) == sorted(r["payment_id"] for r in runs)
    assert us.balances(ops) == {"USD": "40.00"}
    assert hk.balances(header) == {"USD": "85.00"}
    order = us.get(f"/v1/groups/{group_id}/standing-orders/{order_id}", treasurer).json()
    assert order["next_due_at"] > runs[0]["due_at"]
    balances = us.get(f"/v1/groups/{group_id}/balances", treasurer).json()
    assert balances["totals"] == {"USD": "40.00"}


def test_a_failed_run_is_recorded_and_the_next_day_is_paid(
    banks: dict[str, BankGateway], scheduler: SchedulerGateway
) -> None:
    us, hk = banks[US], banks[HK]
    payer = us.open_account("Acme US Inc", "US")
    payee = hk.open_account("Acme HK Payroll", "HK")
    us.issue(payer.account_id, "USD", "5.00")
    group_id, treasurer = _group(us, [(US, payer.account_id), (HK, payee.account_id)])
    scheduler.start(0)
    made = us.post(
        f"/v1/groups/{group_id}/standing-orders",
        {"kind": "payment", "from_account": payer.account_id, "to_bank": HK, "to_account": payee.account_id,
         "currency": "USD", "amount": "10.00", "every": "day"},
        {**treasurer, "Idempotency-Key": unique("payroll")},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    order_id = made.json()["order_id"]
    failed = wait_for(lambda: [r for r in _runs(us, group_id, order_id, treasurer) if r["status"] == "failed"])
    assert [(r["reason"], r["payment_id"]) for r in failed] == [("insufficient_funds", None)]

    us.issue(payer.account_id, "USD", "20.00")
    scheduler.start(DAY)
    paid = wait_for(lambda: [r for r in _runs(us, group_id, order_id, treasurer) if r["status"] == "paid"])
    assert len(paid) == 1
    runs = _runs(us, group_id, order_id, treasurer)
    assert [(r["status"], r["reason"]) for r in runs] == [("paid", None), ("failed", "insufficient_funds")]
    assert wait_for(lambda: _completed(us, paid[0]["payment_id"]), timeout=60)
    assert us.balances(payer) == {"USD": "15.00"}
    assert hk.balances(payee) == {"USD": "10.00"}


def test_the_readmes_treasury_example_works_as_written(banks: dict[str, BankGateway]) -> None:
    from tests.integration.test_readme import for_test_network, json_documents, readme_api_block

    section = (ROOT / "README.md").read_text().split("## Corporate groups and treasury", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under 'Corporate groups and treasury'"
    script = for_test_network(readme_api_block() + match.group(1))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    documents = json_documents(result.stdout)
    balances = next(d for d in documents if "totals" in d)
    assert balances["totals"] == {"USD": "750.00"}, balances
    [run] = [d for d in documents if "runs" in d][-1]["runs"]
    assert (run["status"], run["amount"], run["payee_bank"]) == ("paid", "250.00", HK), run
