"""Fault injection for test networks: hold chosen payment actions until told to let go.

Off unless ``fault_file`` (``BANK_API_FAULT_FILE``) names a file, which no production setup
does. The file is JSON, read afresh on every check so a test can change it while the gateway
runs::

    {"hold_completions_to": ["acc_..."]}

holds every completion of a payment to one of those payee accounts before it reaches the
ledger, for as long as the account stays listed (or the gateway stops). It exists so that
a test on the real network can show that one stuck completion delays no other payment.

``{"hold_standing_order_runs": true}`` holds every standing-order run once it is claimed and
its amount fixed, before its payment reaches the ledger: a test kills the gateway there to show
that the restarted gateway pays the run once.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from gateway.bank_api.ledger import Ledger, LedgerError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


class Faults:
    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def _held_accounts(self) -> frozenset[str]:
        if self.path is None:
            return frozenset()
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return frozenset()  # no file (or half written): nothing held
        accounts = data.get("hold_completions_to") if isinstance(data, dict) else None
        return frozenset(a for a in accounts or () if isinstance(a, str))

    def _holds_runs(self) -> bool:
        if self.path is None:
            return False
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("hold_standing_order_runs") is True

    def hold_standing_order_run(self, run_id: str, stop: threading.Event) -> None:
        """Block while the fault file says to hold standing-order runs."""
        if not self._holds_runs():
            return
        log.warning("fault injection: holding standing-order run %s", run_id)
        while self._holds_runs() and not stop.wait(POLL_SECONDS):
            pass
        log.warning("fault injection: released standing-order run %s", run_id)

    def hold_completion(self, ledger: Ledger, payment_id: str, stop: threading.Event) -> None:
        """Block while the payment's payee account is listed in the fault file."""
        held = self._held_accounts()
        if not held:
            return
        try:
            details = ledger.get_payment(payment_id, details=True).get("details") or {}
        except LedgerError:
            return
        account = details.get("payee_account") if isinstance(details, dict) else None
        if account not in held:
            return
        log.warning("fault injection: holding the completion of payment %s", payment_id)
        while account in self._held_accounts() and not stop.wait(POLL_SECONDS):
            pass
        log.warning("fault injection: released the completion of payment %s", payment_id)
