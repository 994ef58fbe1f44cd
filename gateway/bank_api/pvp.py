"""Payment versus payment at the gateway: representation, who sees a trade, webhooks, the sweep.

The contract (chaincode/deposit_token/pvp.py) holds the state machine; each bank's gateway does
its bank's steps: the proposer's locks A's leg, the acceptor's locks B's leg when B accepts and
delivers its own leg at once; the proposer's follower delivers the other leg on ``PvpLocked`` and
refunds on ``PvpRefused``; the sweeper finishes whatever an event did not (expiry included).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from gateway.bank_api.auth import Principal
from gateway.bank_api.ledger import JSON, ContractRejected, Ledger
from gateway.bank_api.money import Currencies
from gateway.bank_api.representations import timestamp
from gateway.bank_api.storage.db import Database
from gateway.bank_api.webhooks import enqueue

log = logging.getLogger(__name__)

PVP_STATUSES = ("proposed", "locked", "settled", "refused", "refunded")
PVP_EVENT_TYPES = ("pvp.proposed", "pvp.locked", "pvp.delivered", "pvp.refunded")
OPEN_PAGE = 100


def _money(currencies: Currencies, value: Any, currency: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(currency, str):
        return None
    return currencies.format_amount(value, currency)


def representation(data: JSON, currencies: Currencies) -> JSON:
    legs = data.get("legs") or {}
    mine, theirs = legs.get("p") or {}, legs.get("a") or {}
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    return {
        "pvp_id": data.get("pvp_id"),
        "status": data.get("status"),
        "reason": data.get("reason"),
        "proposer_bank": mine.get("bank"),
        "acceptor_bank": theirs.get("bank"),
        "currency": mine.get("currency"),
        "amount": _money(currencies, mine.get("amount"), mine.get("currency")),
        "counter_currency": theirs.get("currency"),
        "counter_amount": _money(currencies, theirs.get("amount"), theirs.get("currency")),
        "rate": data.get("rate"),
        "expires_at": timestamp(data.get("expires_at")),
        "proposer_leg_delivered": bool(mine.get("delivered")),
        "acceptor_leg_delivered": bool(theirs.get("delivered")),
        "created_at": timestamp(data.get("created_at")),
        "timeline": [
            {"status": step.get("status"), "at": timestamp(step.get("at")), "tx_id": step.get("tx_id")}
            for step in data.get("timeline") or []
            if isinstance(step, dict)
        ],
        "payer_account": (details or {}).get("payer_account"),
        "payee_account": (details or {}).get("payee_account"),
        "counter_payer_account": (details or {}).get("counter_payer_account"),
        "counter_payee_account": (details or {}).get("counter_payee_account"),
    }


def side(record: JSON, own_bank: str) -> str | None:
    legs = record.get("legs") or {}
    for name in ("p", "a"):
        if (legs.get(name) or {}).get("bank") == own_bank:
            return name
    return None


def party_accounts(record: JSON, own_bank: str) -> list[str]:
    """This bank's customers in the trade (both settlement accounts held here)."""
    details = record.get("details")
    if not isinstance(details, dict):
        return []
    names = {"p": ("payer_account", "payee_account"), "a": ("counter_payer_account", "counter_payee_account")}
    ours = side(record, own_bank)
    if ours is None:
        return []
    return [str(details[name]) for name in names[ours] if isinstance(details.get(name), str)]


def visible_to(principal: Principal, record: JSON, own_bank: str) -> bool:
    if principal.is_operator:
        return True
    account = principal.merchant_account
    return account is not None and account in party_accounts(record, own_bank)


def notify(db: Database, accounts: list[str], event_type: str, event_id: str, data: JSON) -> None:
    with db.session() as session:
        for account in dict.fromkeys(accounts):
            enqueue(session, account, event_type, event_id, data)


def deliver(ledger: Ledger, db: Database, currencies: Currencies, pvp_id: str) -> str:
    """Deliver this bank's leg and tell its payee; returns what happened."""
    try:
        result = ledger.deliver_pvp_leg(pvp_id)
    except ContractRejected as refusal:
        log.info("PvP %s leg not delivered: %s", pvp_id, refusal.code)
        return refusal.code
    if not result.get("delivered"):
        return "already"
    record = ledger.get_pvp(pvp_id, details=True)
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    payee = (details or {}).get("payee_account" if side(record, ledger.msp_id) == "p" else "counter_payee_account")
    if isinstance(payee, str):
        notify(
            db, [payee], "pvp.delivered", f"pvp.delivered:{pvp_id}:{ledger.msp_id}", representation(record, currencies)
        )
    return "delivered"


def refund(ledger: Ledger, db: Database, currencies: Currencies, pvp_id: str) -> str:
    try:
        result = ledger.refund_pvp_leg(pvp_id)
    except ContractRejected as refusal:
        log.info("PvP %s not refunded: %s", pvp_id, refusal.code)
        return refusal.code
    if not result.get("refunded"):
        return "already"
    record = ledger.get_pvp(pvp_id, details=True)
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    payer = (details or {}).get("payer_account")
    if isinstance(payer, str):
        notify(db, [payer], "pvp.refunded", f"pvp.refunded:{pvp_id}", representation(record, currencies))
    return "refunded"


def _expired(record: JSON, now: float) -> bool:
    text = record.get("expires_at")
    if not isinstance(text, str):
        return False
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp() <= now
    except ValueError:
        return False


def sweep(ledger: Ledger, db: Database, currencies: Currencies, now: float) -> dict[str, int]:
    """Deliver our locked legs, refund our refused or expired offers; returns counts."""
    counts = {"pvp_delivered": 0, "pvp_refunded": 0}
    for record in ledger.list_open_pvps(OPEN_PAGE).get("pvps") or []:
        if not isinstance(record, dict) or not isinstance(record.get("pvp_id"), str):
            continue
        pvp_id, ours, status = record["pvp_id"], side(record, ledger.msp_id), record.get("status")
        legs = record.get("legs") or {}
        if status == "locked" and ours and not (legs.get(ours) or {}).get("delivered"):
            outcome = deliver(ledger, db, currencies, pvp_id)
            counts["pvp_delivered"] += outcome == "delivered"
            if outcome == "invalid_state" and ours == "p" and _expired(record, now):
                # Marked locked, yet the counterparty's lock is not on the ledger: the offer lapsed.
                counts["pvp_refunded"] += refund(ledger, db, currencies, pvp_id) == "refunded"
        elif ours == "p" and (status == "refused" or (status == "proposed" and _expired(record, now))):
            counts["pvp_refunded"] += refund(ledger, db, currencies, pvp_id) == "refunded"
    return counts
