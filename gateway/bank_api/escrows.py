"""Escrows at the gateway: their representation, who may see them, their webhooks, their expiry.

The contract keeps every escrow in this bank's books (chaincode/deposit_token/escrow.py); the
gateway adds the parties' view of it and tells the buyer's and the payee's webhooks of each
change. Shared by the routes and the sweeper, which settles escrows past their expiry.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.bank_api.auth import Principal
from gateway.bank_api.ledger import JSON, ContractRejected, Ledger
from gateway.bank_api.money import Currencies
from gateway.bank_api.representations import timestamp
from gateway.bank_api.storage.db import Database
from gateway.bank_api.webhooks import enqueue

log = logging.getLogger(__name__)

ESCROW_STATUSES = ("open", "released", "refunded")
ESCROW_EVENT_TYPES = ("escrow.locked", "escrow.approved", "escrow.released", "escrow.refunded")
DUE_PAGE = 100


def _money(currencies: Currencies, value: Any, currency: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(currency, str):
        return None
    return currencies.format_amount(value, currency)


def representation(data: JSON, currencies: Currencies) -> JSON:
    currency = data.get("currency")
    return {
        "escrow_id": data.get("escrow_id"),
        "status": data.get("status"),
        "payer_bank": data.get("payer_bank"),
        "payer_account": data.get("payer_account"),
        "payee_bank": data.get("payee_bank"),
        "payee_account": data.get("payee_account"),
        "currency": currency,
        "amount": _money(currencies, data.get("locked"), currency),
        "released": _money(currencies, data.get("released"), currency),
        "refunded": _money(currencies, data.get("refunded"), currency),
        "available": _money(currencies, data.get("available"), currency),
        "release_by": data.get("release_by"),
        "attestor": data.get("attestor"),
        "expires_at": timestamp(data.get("expires_at")),
        "on_expiry": data.get("on_expiry"),
        "remittance": data.get("remittance") or None,
        "releases": [
            {
                "release_ref": item.get("release_id"),
                "amount": _money(currencies, item.get("amount"), currency),
                "by": item.get("by"),
                "at": timestamp(item.get("at")),
                "payment_id": item.get("payment_id"),
            }
            for item in data.get("releases") or []
            if isinstance(item, dict)
        ],
        "pending_approvals": [
            {"release_ref": ref, "amount": _money(currencies, item.get("amount"), currency), "by": item.get("by")}
            for ref, item in sorted((data.get("approvals") or {}).items())
            if isinstance(item, dict)
        ],
        "created_at": timestamp(data.get("created_at")),
        "closed_at": timestamp(data.get("closed_at")),
    }


def visible_to(principal: Principal, record: JSON, own_bank: str) -> bool:
    """Operators see every escrow; a merchant those it pays or is paid by here; an attestor those naming it."""
    if principal.is_operator:
        return True
    if principal.attestor_id is not None:
        return record.get("attestor") == principal.attestor_id
    account = principal.merchant_account
    if account is None:
        return False
    if record.get("payer_account") == account:
        return True
    return record.get("payee_bank") == own_bank and record.get("payee_account") == account


def notify(db: Database, record: JSON, own_bank: str, event_type: str, event_id: str, data: JSON) -> None:
    """Queue ``event_type`` for the buyer's subscriptions, and the payee's when it banks here."""
    accounts = [record.get("payer_account")]
    if record.get("payee_bank") == own_bank:
        accounts.append(record.get("payee_account"))
    with db.session() as session:
        for account in dict.fromkeys(accounts):
            if isinstance(account, str):
                enqueue(session, account, event_type, event_id, data)


def expire_due(ledger: Ledger, db: Database, currencies: Currencies) -> int:
    """Settle every open escrow past its expiry as its terms say; returns how many were settled.

    Each ``ExpireEscrow`` is idempotent at the contract, so two gateways (or a retry after a
    crash) settling one escrow settle it once.
    """
    settled = 0
    for escrow_id in ledger.list_due_escrows(DUE_PAGE).get("escrow_ids") or []:
        if not isinstance(escrow_id, str):
            continue
        try:
            result = ledger.expire_escrow(escrow_id)
        except ContractRejected as refusal:
            # A payee that cannot be paid any more, a corridor cap: left for an operator, and
            # tried again on the next pass.
            log.warning("escrow %s not settled at expiry: %s", escrow_id, refusal.code)
            continue
        if not result.get("expired"):
            continue
        settled += 1
        record = ledger.get_escrow(escrow_id)
        event_type = "escrow.released" if result.get("outcome") == "release" else "escrow.refunded"
        notify(
            db, record, ledger.msp_id, event_type, f"{event_type}:{escrow_id}:expiry",
            representation(record, currencies),
        )  # fmt: skip
        log.info("escrow %s settled at expiry: %s", escrow_id, result.get("outcome"))
    return settled
