"""The bank folds its own supply changes, so that reading a supply stays cheap as payments accumulate.

Every issue, redemption and payment adds one supply change (a new key, so concurrent payments never
collide on a counter), and `GetSupply` sums them: without folding, every read of the supply, the
regulator's included, grows with the bank's whole history. The sweeper lists each class the bank
issues and, once it holds `supply_fold_threshold` changes, replaces them with one (`FoldSupply`,
docs/contract-api.md). A fold is housekeeping: the supply is unchanged, so a failed or repeated one
costs nothing but its transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.bank_api.ledger import JSON, Ledger, LedgerError

log = logging.getLogger(__name__)

MAX_FOLD = 1000
"""The contract folds at most this many changes per transaction."""


def issued_currencies(reference_data: JSON, msp_id: str) -> list[str]:
    """The currencies this bank issues, from the reference data (none when it is not listed)."""
    for bank in reference_data.get("banks") or []:
        if isinstance(bank, dict) and bank.get("msp_id") == msp_id:
            return sorted(str(currency) for currency in bank.get("currencies") or [])
    return []


def fold_supply(ledger: Ledger, currencies: list[str], threshold: int) -> dict[str, int]:
    """Fold each class that holds at least ``threshold`` changes; returns the changes folded per class."""
    folded: dict[str, int] = {}
    limit = max(1, min(threshold, MAX_FOLD))
    for currency in currencies:
        try:
            ids: Any = ledger.get_supply_changes(currency, MAX_FOLD).get("change_ids")
            if not isinstance(ids, list) or len(ids) < max(limit, 2):
                continue
            result = ledger.fold_supply(currency, [str(change_id) for change_id in ids])
        except LedgerError as error:  # housekeeping: the next pass tries again
            log.warning("supply fold of %s interrupted: %s", currency, type(error).__name__)
            continue
        folded[currency] = int(result.get("folded") or 0)
        log.info("folded %d supply changes of %s into one", folded[currency], currency)
    return folded
