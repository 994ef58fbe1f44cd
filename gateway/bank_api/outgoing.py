"""Money leaving an account of this bank: a transfer to another of its accounts, or an interbank payment.

One place for what a merchant's payment, a treasurer's payment and a standing order's run all do,
so the ids, the ledger requests and the record of a transfer cannot drift apart between them.
``request_key`` is the caller's idempotency key as the ledger sees it: a transfer's id and a
payment's idempotency key derive from it, so a repeated call finds the first one's result.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from gateway.bank_api.ledger import JSON, Ledger
from gateway.bank_api.storage.db import Database
from gateway.bank_api.storage.models import InternalTransfer, utcnow

TRANSFER_PREFIX = "tr_"


def transfer_id_for(request_key: str) -> str:
    return TRANSFER_PREFIX + request_key[:32]


def transfer(
    ledger: Ledger, db: Database, payer: str, payee: str, currency: str, amount: int,
    remittance: str | None, request_key: str,
) -> str:  # fmt: skip
    """Move money between two accounts of this bank and keep the transfer's record; its id.

    The ledger keeps no record of a transfer's remittance or time: the gateway's row is what
    ``GET /v1/payments/<id>`` shows. A repeated call keeps the first row.
    """
    transfer_id = transfer_id_for(request_key)
    ledger.transfer(payer, payee, currency, amount, transfer_id)
    with db.session() as session:
        if session.get(InternalTransfer, transfer_id) is None:
            session.add(
                InternalTransfer(
                    transfer_id=transfer_id, payer_account=payer, payee_account=payee, currency=currency,
                    amount=amount, remittance=remittance, created_at=utcnow(),
                )
            )  # fmt: skip
            try:
                session.flush()
            except IntegrityError:  # pragma: no cover - a concurrent first call wrote it
                session.rollback()
    return transfer_id


def initiate(
    ledger: Ledger, payer: str, payee_bank: str, payee: str, currency: str, amount: int,
    remittance: str | None, request_key: str, conversion: JSON | None = None,
) -> JSON:  # fmt: skip
    """Initiate an interbank payment; the contract's answer (``payment_id``, and ``payment`` when new).

    ``conversion`` holds ``payee_currency``, ``payee_amount`` and ``rate`` for a cross-currency payment.
    """
    request: JSON = {
        "idempotency_key": request_key,
        "payer_account": payer,
        "payee_bank": payee_bank,
        "payee_account": payee,
        "currency": currency,
        "amount": amount,
        **(conversion or {}),
    }
    if remittance:
        request["remittance"] = remittance
    return ledger.initiate_payment(request)
