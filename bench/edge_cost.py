"""CPU per request at the gateway's HTTP edge, for requests the input boundary answers itself.

Builds a bank gateway app on a fresh SQLite database with a ledger that answers only its reference
data (currencies), and sends requests through Flask's test client that are answered before any
other ledger call: a quote, a payment body with an amount of three decimals (refused after the
idempotency claim, which is released), and a page of an account's history with a malformed
``page_size``. Reports this process's CPU per request, so the cost of reading and refusing input
can be compared between two versions of the gateway (decision 0034):

    .venv/bin/python -m bench.edge_cost --requests 1500
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, cast

from werkzeug.test import TestResponse

from gateway.bank_api.app import create_app
from gateway.bank_api.ledger import Ledger

CURRENCIES = {"USD": 2, "HKD": 2, "SGD": 2}


class ReferenceOnlyLedger:
    """Answers the reference data; any other call would mean the request got past the edge."""

    def get_reference_data(self) -> dict[str, Any]:
        return {"currencies": CURRENCIES, "banks": []}

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"the request reached the ledger: {name}")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500, help="requests per kind (1500)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="edge-cost-"))
    unlimited = 1e9
    app = create_app(
        {
            "msp_id": "USBankMSP",
            "database_url": f"sqlite:///{folder / 'bank_api.sqlite'}",
            "operator_key_file": str(folder / "operator.key"),
            "rate_limit_key_per_second": unlimited,
            "rate_limit_key_burst": unlimited,
            "rate_limit_client_per_second": unlimited,
            "rate_limit_client_burst": unlimited,
            "follow_events": False,
            "deliver_webhooks": False,
        },
        ledger=cast(Ledger, ReferenceOnlyLedger()),
    )
    client = app.test_client()
    operator = {"Authorization": f"Bearer {(folder / 'operator.key').read_text().strip()}"}
    refused_amount = {"account_id": "acc-1", "currency": "USD", "amount": "1.005", "deposit_ref": "DEP-1"}
    kinds: dict[str, Callable[[int], TestResponse]] = {
        "quote (200)": lambda _: client.get(
            "/v1/fx-quote?currency=USD&amount=12.34&payee_currency=USD", headers=operator
        ),
        "issuance with a bad amount (400)": lambda i: client.post(
            "/v1/issuances", json=refused_amount, headers={**operator, "Idempotency-Key": f"k-{i}"}
        ),
        "history with a bad page_size (400)": lambda _: client.get(
            "/v1/accounts/acc-1/history?page_size=7_0", headers=operator
        ),
    }
    for name, send in kinds.items():
        for i in range(50):  # warm caches, the reference data and the database
            send(-i - 1)
        started = _cpu()
        for i in range(args.requests):
            response = send(i)
        per_request = (_cpu() - started) / args.requests * 1e3
        print(f"{name}: HTTP {response.status_code}, {per_request:.3f} ms CPU per request")


if __name__ == "__main__":
    main()
