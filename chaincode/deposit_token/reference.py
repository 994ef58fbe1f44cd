"""Reference data (banks, currencies, corridor policy, payment timeout) and who may act.

All of it is public state written by the regulator, and every key carries a state-based
policy naming the regulator, so no bank can rewrite it even with altered chaincode. That
includes a bank's status: the regulator may suspend a bank and reinstate it later
(docs/decisions/0019-bank-suspension.md); while it is suspended the contract refuses the
bank's new business (:func:`require_active`) and lets what is in flight finish.

Authority: the caller's org is the creator's MSP id, and it must equal the MSP of the
peer running the chaincode. A bank's books live only on its own peer, and a client of
one bank must not drive another bank's peer to act on that bank's books.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from chaincode.deposit_token import keys
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.money import CURRENCY_CODE
from chaincode.deposit_token.requests import JURISDICTION, Request
from chaincode.shim.contract import Context

MSP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_PAYMENT_TIMEOUT_SECONDS = 300
MAX_PAYMENT_TIMEOUT_SECONDS = 7 * 24 * 3600
DEFAULT_CORRIDOR_POLICY: Record = {"rules": [{"currency": "CNH", "cross_border_only": True}]}
ACTIVE = "active"
SUSPENDED = "suspended"
MAX_SUSPENSION_REASON = 200
STATUS_FIELDS = ("status", "status_reason", "status_since")


@dataclass(frozen=True)
class Bank:
    msp_id: str
    name: str
    jurisdiction: str
    currencies: tuple[str, ...]
    status: str = ACTIVE
    # Why the bank is suspended (public text from the regulator), None while it is active.
    status_reason: str | None = None
    # Timestamp of the transaction that last suspended or reinstated it; None if neither ever happened.
    status_since: str | None = None

    def issues(self, currency: str) -> bool:
        return currency in self.currencies

    @property
    def suspended(self) -> bool:
        return self.status == SUSPENDED

    def as_record(self) -> Record:
        return {
            "msp_id": self.msp_id,
            "name": self.name,
            "jurisdiction": self.jurisdiction,
            "currencies": list(self.currencies),
            "status": self.status,
            "status_reason": self.status_reason,
            "status_since": self.status_since,
        }


@dataclass(frozen=True)
class Config:
    regulator: str
    currencies: dict[str, int]
    payment_timeout_seconds: int

    def as_record(self) -> Record:
        return {
            "regulator": self.regulator,
            "currencies": dict(sorted(self.currencies.items())),
            "payment_timeout_seconds": self.payment_timeout_seconds,
        }


# -- reading -------------------------------------------------------------------


def load_config(ledger: Ledger) -> Config:
    record = ledger.get(keys.config())
    if record is None:
        raise refusal("invalid_state", "the reference data is not initialised yet (InitReferenceData)")
    return Config(
        regulator=record["regulator"],
        currencies={code: int(exp) for code, exp in record["currencies"].items()},
        payment_timeout_seconds=int(record.get("payment_timeout_seconds", DEFAULT_PAYMENT_TIMEOUT_SECONDS)),
    )


def _bank_from(record: Record) -> Bank:
    # Records written before banks could be suspended carry no status: those banks are active.
    return Bank(
        msp_id=record["msp_id"],
        name=record["name"],
        jurisdiction=record["jurisdiction"],
        currencies=tuple(record["currencies"]),
        status=record.get("status", ACTIVE),
        status_reason=record.get("status_reason"),
        status_since=record.get("status_since"),
    )


def load_bank(ledger: Ledger, msp_id: str) -> Bank | None:
    record = ledger.get(keys.bank(msp_id))
    return None if record is None else _bank_from(record)


def require_bank(ledger: Ledger, msp_id: object, field: str) -> Bank:
    if not isinstance(msp_id, str) or not MSP_ID.fullmatch(msp_id):
        raise refusal("invalid_request", f"'{field}' must be an MSP id")
    bank = load_bank(ledger, msp_id)
    if bank is None:
        raise refusal("unknown_bank", f"'{field}': {msp_id} is not a registered bank")
    return bank


def all_banks(ledger: Ledger) -> list[Bank]:
    return [_bank_from(record) for _, record in ledger.scan_records(keys.BANK) if record is not None]


def require_active(bank: Bank, refused: str) -> None:
    """Refuse new business of a suspended bank; ``refused`` says what is not accepted.

    Only new business: what a bank must do to finish payments already in flight
    (complete, reject, refund) and to settle (open and confirm cycles) never calls this,
    so no money is stuck while the bank is suspended.
    """
    if bank.suspended:
        raise refusal(
            "bank_suspended",
            f"{bank.msp_id} is suspended by the regulator since {bank.status_since} "
            f"(reason: {bank.status_reason}); {refused}",
        )


# -- who is calling ------------------------------------------------------------


def caller_org(ctx: Context) -> str:
    """The creator's org, which must also be the org of the peer running this code."""
    creator = ctx.client_identity.msp_id
    peer = ctx.stub.get_peer_msp_id()
    if creator != peer:
        raise refusal(
            "not_authorized",
            f"a client of {creator} may not act through the peer of {peer}: "
            "each org works its own books on its own peer",
        )
    return creator


def caller_bank(ctx: Context, ledger: Ledger, *also_read: str) -> Bank:
    """The caller's bank; ``also_read`` names public keys the transaction reads next, fetched
    in the same request."""
    org = caller_org(ctx)
    ledger.prefetch([keys.bank(org), *also_read])
    bank = load_bank(ledger, org)
    if bank is None:
        raise refusal("not_authorized", f"{org} is not a registered bank")
    return bank


def peer_bank(ctx: Context, ledger: Ledger, *also_read: str) -> Bank:
    """The bank whose peer runs this code, for the few queries another bank's client may send it;
    ``also_read`` names public keys the query reads next, fetched in the same request."""
    org = ctx.stub.get_peer_msp_id()
    ledger.prefetch([keys.bank(org), *also_read])
    bank = load_bank(ledger, org)
    if bank is None:
        raise refusal("not_authorized", f"{org} is not a registered bank")
    return bank


def caller_regulator(ctx: Context, ledger: Ledger, action: str = "change the reference data") -> Config:
    org = caller_org(ctx)
    config = load_config(ledger)
    if org != config.regulator:
        raise refusal("not_authorized", f"only the regulator may {action}")
    return config


# -- writing -------------------------------------------------------------------


def _parse_currencies(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        raise refusal("invalid_request", "'currencies' must be a non-empty object of code: exponent")
    currencies: dict[str, int] = {}
    for code, exponent in value.items():
        if not isinstance(code, str) or not CURRENCY_CODE.fullmatch(code):
            raise refusal("invalid_request", "'currencies' keys must be three-letter ISO 4217 codes")
        if isinstance(exponent, bool) or not isinstance(exponent, int) or not 0 <= exponent <= 8:
            raise refusal("invalid_request", f"'currencies.{code}' must be an integer exponent from 0 to 8")
        currencies[code] = exponent
    return currencies


def _parse_banks(value: Any, currencies: dict[str, int], regulator: str) -> list[tuple[Bank, dict[str, Any]]]:
    """Each listed bank, with the status fields the entry repeats (if any)."""
    if not isinstance(value, list):
        raise refusal("invalid_request", "'banks' must be a list")
    banks: list[tuple[Bank, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"banks[{index}]"
        if not isinstance(item, dict) or set(item) - {"msp_id", "name", "jurisdiction", "currencies", *STATUS_FIELDS}:
            raise refusal("invalid_request", f"'{where}' must be an object of msp_id, name, jurisdiction, currencies")
        msp = item.get("msp_id")
        if not isinstance(msp, str) or not MSP_ID.fullmatch(msp):
            raise refusal("invalid_request", f"'{where}.msp_id' must be an MSP id")
        if msp in seen or msp == regulator:
            raise refusal("invalid_request", f"'{where}.msp_id' {msp} is listed twice or is the regulator")
        seen.add(msp)
        name = item.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise refusal("invalid_request", f"'{where}.name' must be a string of 1 to 100 characters")
        jurisdiction = item.get("jurisdiction")
        if not isinstance(jurisdiction, str) or not JURISDICTION.fullmatch(jurisdiction):
            raise refusal("invalid_request", f"'{where}.jurisdiction' must be 2 to 4 capital letters")
        issued = item.get("currencies")
        if not isinstance(issued, list) or not all(isinstance(c, str) for c in issued):
            raise refusal("invalid_request", f"'{where}.currencies' must be a list of currency codes")
        for code in issued:
            if code not in currencies:
                raise refusal("unknown_currency", f"'{where}.currencies': {code} is not in 'currencies'")
        # The status fields are read back below: a bank list taken from GetReferenceData may be
        # sent again as it is, but a status changes only by SuspendBank and ReinstateBank.
        status = {field: item[field] for field in STATUS_FIELDS if field in item}
        banks.append((Bank(msp, name, jurisdiction, tuple(dict.fromkeys(issued))), status))
    return banks


def init_reference_data(ctx: Context, ledger: Ledger, data: dict[str, Any]) -> Record:
    """Create or extend the reference data. Idempotent; banks and currencies may be added later."""
    if set(data) - {"regulator", "currencies", "banks", "payment_timeout_seconds"}:
        raise refusal("invalid_request", "reference data holds only regulator, currencies, banks")
    regulator = data.get("regulator")
    if not isinstance(regulator, str) or not MSP_ID.fullmatch(regulator):
        raise refusal("invalid_request", "'regulator' must be an MSP id")
    org = caller_org(ctx)
    existing = ledger.get(keys.config())
    if existing is None:
        # Bootstrap: the org that the consortium names as regulator creates the data; from
        # then on every reference key needs the regulator's endorsement.
        if org != regulator:
            raise refusal("not_authorized", "the reference data is initialised by the regulator it names")
        config = Config(regulator, {}, DEFAULT_PAYMENT_TIMEOUT_SECONDS)
    else:
        config = load_config(ledger)
        if org != config.regulator:
            raise refusal("not_authorized", "only the regulator may change the reference data")
        if regulator != config.regulator:
            raise refusal("invalid_request", "'regulator' cannot be changed")
    currencies = _parse_currencies(data.get("currencies"))
    for code, exponent in currencies.items():
        if code in config.currencies and config.currencies[code] != exponent:
            raise refusal("invalid_request", f"the exponent of {code} is {config.currencies[code]} and cannot change")
    merged = {**config.currencies, **currencies}
    banks = _parse_banks(data.get("banks", []), merged, regulator)
    timeout = config.payment_timeout_seconds
    if "payment_timeout_seconds" in data:
        timeout = parse_timeout(data["payment_timeout_seconds"])
    new_config = Config(regulator, merged, timeout)
    changed = existing != new_config.as_record()
    if changed:
        ledger.put(keys.config(), new_config.as_record())
        ledger.require_endorsers(keys.config(), [regulator])
    for index, (listed, status) in enumerate(banks):
        bank_key = keys.bank(listed.msp_id)
        known = load_bank(ledger, listed.msp_id)
        # The reference data lists who a bank is; whether it is suspended is a separate
        # decision of the regulator, which re-running the initialisation must not undo.
        bank = listed
        if known is not None:
            bank = replace(
                listed, status=known.status, status_reason=known.status_reason, status_since=known.status_since
            )
        current = bank.as_record()
        for field, value in status.items():
            if value != current[field]:
                raise refusal(
                    "invalid_request",
                    f"'banks[{index}].{field}' differs from the ledger's: a bank's status changes only "
                    "by SuspendBank and ReinstateBank",
                )
        if ledger.get(bank_key) != current:
            changed = True
            ledger.put(bank_key, current)
            ledger.require_endorsers(bank_key, [regulator])
    if ledger.get(keys.corridor()) is None:
        changed = True
        # Version 1 of the corridor policy (chaincode/deposit_token/corridor.py keeps the versions).
        initial = {**DEFAULT_CORRIDOR_POLICY, "version": 1, "caps": [], "note": None,
                   "changed_at": ledger.now_iso, "tx_id": ledger.tx_id, "previous": None}  # fmt: skip
        ledger.put(keys.corridor(), initial)
        ledger.require_endorsers(keys.corridor(), [regulator])
    if changed:
        ledger.emit("ReferenceDataChanged", {"regulator": regulator, "banks": sorted(b.msp_id for b, _ in banks)})
    return {"changed": changed, "banks": len(banks), "currencies": len(merged)}


def parse_timeout(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAYMENT_TIMEOUT_SECONDS:
        raise refusal(
            "invalid_request",
            f"'payment_timeout_seconds' must be an integer from 1 to {MAX_PAYMENT_TIMEOUT_SECONDS}",
        )
    return value


def set_payment_timeout(ctx: Context, ledger: Ledger, seconds: int) -> Record:
    config = caller_regulator(ctx, ledger)
    timeout = parse_timeout(seconds)
    ledger.put(keys.config(), Config(config.regulator, config.currencies, timeout).as_record())
    ledger.emit("PaymentTimeoutChanged", {"payment_timeout_seconds": timeout})
    return {"payment_timeout_seconds": timeout}


# -- suspension ----------------------------------------------------------------


def _save_bank(ledger: Ledger, config: Config, bank: Bank) -> None:
    key = keys.bank(bank.msp_id)
    ledger.put(key, bank.as_record())
    # The policy set at initialisation survives a value-only write; restating it, as
    # InitReferenceData does, keeps this function right on its own at the cost of one metadata write.
    ledger.require_endorsers(key, [config.regulator])


def parse_suspension_reason(value: str) -> str:
    # The reason is public and is repeated in every refusal: one line of text, no customer data.
    return Request({"reason": value}, ["reason"]).text("reason", max_length=MAX_SUSPENSION_REASON)


def suspend_bank(ctx: Context, ledger: Ledger, msp_id: str, reason: str) -> Record:
    config = caller_regulator(ctx, ledger, "suspend or reinstate a bank")
    bank = require_bank(ledger, msp_id, "msp_id")
    reason = parse_suspension_reason(reason)
    if bank.suspended:
        raise refusal(
            "invalid_state",
            f"{bank.msp_id} is already suspended since {bank.status_since} (reason: {bank.status_reason})",
        )
    suspended = replace(bank, status=SUSPENDED, status_reason=reason, status_since=ledger.now_iso)
    _save_bank(ledger, config, suspended)
    ledger.emit("BankSuspended", {"bank": bank.msp_id, "reason": reason, "since": ledger.now_iso})
    return suspended.as_record()


def reinstate_bank(ctx: Context, ledger: Ledger, msp_id: str) -> Record:
    config = caller_regulator(ctx, ledger, "suspend or reinstate a bank")
    bank = require_bank(ledger, msp_id, "msp_id")
    if not bank.suspended:
        raise refusal("invalid_state", f"{bank.msp_id} is {bank.status}, not suspended: nothing to reinstate")
    reinstated = replace(bank, status=ACTIVE, status_reason=None, status_since=ledger.now_iso)
    _save_bank(ledger, config, reinstated)
    ledger.emit("BankReinstated", {"bank": bank.msp_id, "since": ledger.now_iso})
    return reinstated.as_record()


def reference_data(ledger: Ledger) -> Record:
    config = load_config(ledger)
    return {
        **config.as_record(),
        "banks": [bank.as_record() for bank in all_banks(ledger)],
        "corridor_policy": ledger.get(keys.corridor()) or DEFAULT_CORRIDOR_POLICY,
    }
