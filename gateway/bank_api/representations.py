"""Ledger answers (integer minor units) → HTTP bodies (decimal strings).

Every shape here is described in the OpenAPI document; what the contract adds later is
dropped rather than passed through unchecked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.bank_api.ledger import JSON
from gateway.bank_api.money import Currencies

PAYMENT_STATUSES = ("initiated", "completed", "rejected", "refunded")


def timestamp(value: Any) -> str | None:
    """Contract timestamps (epoch seconds or ISO text) → RFC 3339 text in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _amount(currencies: Currencies, value: Any, currency: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(currency, str):
        return None
    return currencies.format_amount(value, currency)


def _limit(currencies: Currencies, value: Any, currency: str) -> str | None:
    return _amount(currencies, value, currency) if value is not None else None


def account(data: JSON, currencies: Currencies) -> JSON:
    balances = data.get("balances") or {}
    limits = data.get("limits") or {}
    return {
        "account_id": data.get("account_id"),
        "holder": data.get("holder"),
        "jurisdiction": data.get("jurisdiction"),
        "kyc_ref": data.get("kyc_ref"),
        "status": data.get("status"),
        "balances": {
            str(ccy): currencies.format_amount(int(amount), str(ccy))
            for ccy, amount in sorted(balances.items())
            if isinstance(amount, int) and not isinstance(amount, bool)
        },
        "limits": {
            str(ccy): {
                "per_transaction": _limit(currencies, (rule or {}).get("per_transaction"), str(ccy)),
                "daily": _limit(currencies, (rule or {}).get("daily"), str(ccy)),
            }
            for ccy, rule in sorted(limits.items())
        },
    }


def history_entry(entry: JSON, currencies: Currencies) -> JSON:
    return {
        "tx_id": entry.get("tx_id"),
        "timestamp": timestamp(entry.get("timestamp")),
        "kind": entry.get("kind"),
        "currency": entry.get("currency"),
        "amount": _amount(currencies, entry.get("amount"), entry.get("currency")),
        "reference": entry.get("reference"),
        "payment_id": entry.get("payment_id"),
    }


def payment(data: JSON, currencies: Currencies) -> JSON:
    currency = data.get("currency")
    payee_currency = data.get("payee_currency") or currency
    payee_amount = data.get("payee_amount")
    if payee_amount is None:
        payee_amount = data.get("amount")
    body: JSON = {
        "payment_id": data.get("payment_id"),
        "status": data.get("status"),
        "payer_bank": data.get("payer_bank"),
        "payee_bank": data.get("payee_bank"),
        "currency": currency,
        "amount": _amount(currencies, data.get("amount"), currency),
        "payee_currency": payee_currency,
        "payee_amount": _amount(currencies, payee_amount, payee_currency),
        "rate": data.get("rate") or None,
        "reason": data.get("reason") or None,
        "created_at": timestamp(data.get("created_at")),
        "cycle_id": data.get("cycle_id") or None,
        "timeline": [
            {"status": step.get("status"), "at": timestamp(step.get("at")), "tx_id": step.get("tx_id")}
            for step in data.get("timeline") or []
            if isinstance(step, dict)
        ],
    }
    details = data.get("details")
    if isinstance(details, dict):
        body["payer_account"] = details.get("payer_account")
        body["payee_account"] = details.get("payee_account")
        body["remittance"] = details.get("remittance") or None
    return body


def supply(data: JSON, currencies: Currencies) -> JSON:
    return {
        "token_classes": [
            {
                "issuer": item.get("issuer"),
                "currency": item.get("currency"),
                "supply": _amount(currencies, item.get("supply"), item.get("currency")),
            }
            for item in data.get("token_classes") or []
            if isinstance(item, dict)
        ]
    }


def positions(raw: Any, currencies: Currencies) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    if not isinstance(raw, dict):
        return out
    for bank, by_currency in sorted(raw.items()):
        if not isinstance(by_currency, dict):
            continue
        out[str(bank)] = {
            str(ccy): currencies.format_amount(int(value), str(ccy))
            for ccy, value in sorted(by_currency.items())
            if isinstance(value, int) and not isinstance(value, bool)
        }
    return out


def settlement_cycle(data: JSON, currencies: Currencies) -> JSON:
    confirmations = data.get("confirmations")
    return {
        "cycle_id": data.get("cycle_id"),
        "status": data.get("status"),
        "opened_by": data.get("opened_by"),
        "opened_at": timestamp(data.get("opened_at")),
        "settled_at": timestamp(data.get("settled_at")),
        "banks": sorted(str(b) for b in data.get("banks") or (data.get("positions") or {}).keys()),
        "positions": positions(data.get("positions"), currencies),
        "payments": _count(data.get("payments")),
        "confirmations": _confirmations(confirmations),
    }


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return 0


def _confirmations(value: Any) -> dict[str, JSON]:
    """Each bank's leg: confirmed or not, with its external reference and time."""
    out: dict[str, JSON] = {}
    if not isinstance(value, dict):
        return out
    for bank, item in sorted(value.items()):
        item = item if isinstance(item, dict) else {}
        ref = item.get("external_ref")
        out[str(bank)] = {
            "confirmed": bool(item.get("confirmed")),
            "external_ref": ref if isinstance(ref, str) else None,
            "at": timestamp(item.get("at")),
        }
    return out
