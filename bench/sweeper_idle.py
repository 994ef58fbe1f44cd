"""What the standing orders add to an idle sweeper pass: ``StandingOrders.run_due`` when nothing is due.

Builds a gateway app on a fresh SQLite database (as each bank's gateway uses) with a ledger that
must not be called, makes ``--orders`` active standing orders due tomorrow, and times ``run_due``
(wall and this process's CPU) over ``--passes`` passes for each count. An idle pass makes no ledger
call, so the figure is the gateway's database work alone; the rest of the sweeper's pass (listing
open payments, due escrows and PvPs from the peer) is unchanged by standing orders.

    .venv/bin/python -m bench.sweeper_idle --orders 0,100,10000 --passes 2000

With ``--profile`` (a running network's profile.json) it also times the whole idle sweeper pass
(``PaymentSweeper.sweep``: open payments, due escrows and PvPs read from the bank's peer, then
the standing orders) with a gateway of ``--msp`` on its own fresh database:

    .venv/bin/python -m bench.sweeper_idle --profile .state/t/profile.json --passes 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, cast

from gateway.bank_api.app import Services, create_app
from gateway.bank_api.config import GatewayConfig
from gateway.bank_api.ledger import Ledger
from gateway.bank_api.standing_orders import ACTIVE, StandingOrders
from gateway.bank_api.storage.models import CorporateGroup, StandingOrder, utcnow
from gateway.bank_api.workers import PaymentSweeper


class UncalledLedger:
    """An idle pass must not reach the ledger: any call fails the measurement."""

    msp_id = "USBankMSP"

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"an idle pass called the ledger: {name}")


def _services(folder: Path) -> Services:
    config = {
        "msp_id": "USBankMSP",
        "database_url": f"sqlite:///{folder / 'bank_api.sqlite'}",
        "operator_key_file": str(folder / "operator.key"),
    }
    app = create_app(config, ledger=cast(Ledger, UncalledLedger()))
    return cast(Services, app.extensions["bank_api"])


def _add_orders(services: Services, count: int) -> None:
    now = utcnow()
    tomorrow = now + timedelta(days=1)
    with services.db.session() as session:
        session.add(CorporateGroup(group_id="bench", name="Bench Group", created_at=now))
        session.flush()
        for n in range(count):
            session.add(
                StandingOrder(
                    order_id=f"so_{n:032x}", group_id="bench", kind="sweep", from_account=f"acc-{n}",
                    to_bank="HKBankMSP", to_account="header", currency="USD", amount=None, target_balance=0,
                    top_up=0, on_credit=0, every="day", start_at=tomorrow, next_due_at=tomorrow, runs_claimed=0,
                    status=ACTIVE, remittance=None, created_at=now, updated_at=now,
                )
            )  # fmt: skip


def measure(count: int, passes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sweeper-idle-") as tmp:
        services = _services(Path(tmp))
        try:
            _add_orders(services, count)
            orders = StandingOrders(services)
            for _ in range(50):  # warm the connection pool and the statement cache
                orders.run_due()
            walls: list[float] = []
            cpu_start = time.process_time()
            for _ in range(passes):
                started = time.perf_counter()
                counts = orders.run_due()
                walls.append(time.perf_counter() - started)
                assert counts == {"standing_order_runs_claimed": 0}, counts
            cpu = time.process_time() - cpu_start
        finally:
            services.db.dispose()
    return {
        "orders": count,
        "passes": passes,
        "wall_ms_median": statistics.median(walls) * 1000,
        "wall_ms_p99": sorted(walls)[int(len(walls) * 0.99) - 1] * 1000,
        "cpu_ms_per_pass": cpu / passes * 1000,
    }


def measure_sweeper(profile: str, msp_id: str, passes: int) -> dict[str, Any]:
    """Whole idle sweeper passes against a real peer (this gateway's own database is fresh)."""
    with tempfile.TemporaryDirectory(prefix="sweeper-idle-") as tmp:
        config = GatewayConfig.from_profile(
            profile,
            msp_id,
            database_url=f"sqlite:///{Path(tmp) / 'bank_api.sqlite'}",
            operator_key_file=str(Path(tmp) / "operator.key"),
        )
        app = create_app(config)
        services = cast(Services, app.extensions["bank_api"])
        try:
            sweeper = PaymentSweeper(services)
            for _ in range(3):
                sweeper.sweep()
            walls: list[float] = []
            cpu_start = time.process_time()
            for _ in range(passes):
                started = time.perf_counter()
                sweeper.sweep()
                walls.append(time.perf_counter() - started)
            cpu = time.process_time() - cpu_start
        finally:
            services.ledger.close()
            services.db.dispose()
    return {
        "passes": passes,
        "wall_ms_median": statistics.median(walls) * 1000,
        "cpu_ms_per_pass": cpu / passes * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", default="0,100,10000", help="comma-separated counts of active orders")
    parser.add_argument("--passes", type=int, default=2000)
    parser.add_argument("--profile", help="a running network's profile.json: also time whole sweeper passes")
    parser.add_argument("--msp", default="USBankMSP", help="the bank whose gateway passes (with --profile)")
    args = parser.parse_args()
    if args.profile:
        whole = measure_sweeper(args.profile, args.msp, args.passes)
        print(
            f"whole idle sweeper pass on {args.msp}'s peer: median wall {whole['wall_ms_median']:.1f} ms, "
            f"CPU {whole['cpu_ms_per_pass']:.2f} ms per pass ({whole['passes']} passes)"
        )
    print("orders  passes  wall median ms  wall p99 ms  CPU ms/pass")
    for count in (int(item) for item in args.orders.split(",")):
        r = measure(count, args.passes)
        print(
            f"{r['orders']:>6}  {r['passes']:>6}  {r['wall_ms_median']:>14.3f}  {r['wall_ms_p99']:>11.3f}"
            f"  {r['cpu_ms_per_pass']:>11.3f}"
        )


if __name__ == "__main__":
    main()
