"""The regulator's views over public records: supply, payments, positions, settlement, corridor policy.

Everything here comes from public state through the regulator's own peer: the payment
records (banks, currencies, amounts, status, timeline, salted hash of the details), the
settlement cycles, the supply of each token class and the corridor policy. No view asks
for a payment's private details, and the contract would refuse the regulator if one did,
so no customer name, account or remittance text can reach the regulator through them.

Amounts come from the contract in integer minor units and leave as decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from gateway.bank_api import representations
from gateway.bank_api import validation as v
from gateway.bank_api.boundary import (
    Absent,
    Amount,
    Body,
    Currency,
    Jurisdiction,
    MspId,
    Rule,
    ascii_whole,
    one_of,
    text,
    worded,
)
from gateway.bank_api.csv_export import Listing
from gateway.bank_api.ledger import JSON, OversightLedger
from gateway.bank_api.money import Currencies, MoneyError
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.validation import bad_request, matches

PAYMENT_ID = r"^[0-9a-f]{64}$"
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
CURSOR = r"^([0-9a-f]{2}){0,1024}$"
CYCLE_STATUSES = ("open", "settled")
# The contract answers at most this many records per call and examines this many index entries
# before it hands back a bookmark, so one slow filter never holds the regulator's peer for long.
CONTRACT_PAGE = 500
SCAN_PER_CALL = 2000
# A page that is still short after this many calls is returned as it is, with its cursor.
MAX_CALLS_PER_PAGE = 25
# An export larger than this is refused with a hint to narrow it (a time range usually does).
MAX_EXPORT_ROWS = 50_000

PAYMENT_COLUMNS = (
    "payment_id", "status", "payer_bank", "payee_bank", "currency", "amount", "payee_currency", "payee_amount",
    "rate", "reason", "created_at", "initiated_at", "completed_at", "rejected_at", "refunded_at", "cycle_id",
    "corridor_version", "details_hash",
)  # fmt: skip


# -- what a query may hold ------------------------------------------------------------------

DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _moment(value: Any) -> datetime:
    problem = PydanticCustomError(
        "moment",
        "must be an RFC 3339 time with its zone, such as 2025-01-06T09:00:00Z "
        "(a '+' offset is sent as %2B: a bare '+' in a query string reads as a space)",
    )
    if not isinstance(value, str) or not matches(RFC3339, value):
        raise problem
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (OverflowError, ValueError):
        raise problem from None


def _day(value: Any) -> date:
    if isinstance(value, str) and matches(DAY, value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("day", "must be a date such as 2025-01-06 (UTC)")


# An RFC 3339 time with its zone, as an aware UTC datetime.
Moment = Annotated[
    datetime, PlainValidator(_moment), WithJsonSchema({"type": "string", "pattern": RFC3339, "maxLength": 40})
]
# A UTC day.
Day = Annotated[date, PlainValidator(_day), WithJsonSchema({"type": "string", "pattern": DAY, "maxLength": 10})]
# Checked where it is used (Currencies.known), whose refusal says which rule it breaks (not a
# three-letter code, or not used on this network); the pattern is what the document publishes of it.
NetworkCurrency = Annotated[
    str,
    Field(
        description="ISO 4217 code",
        json_schema_extra={"pattern": v.CURRENCY, "minLength": 3, "maxLength": 3, "example": "USD"},
    ),
]
# A page of a search: its size refused in the words this API has always used; the cursor is the
# contract's bookmark in hex.
SearchPageSize = Annotated[
    int,
    Field(ge=1, le=v.MAX_PAGE_SIZE),
    BeforeValidator(ascii_whole),
    worded(f"must be a whole number from 1 to {v.MAX_PAGE_SIZE} in ASCII digits"),
]
SearchCursor = Annotated[
    str,
    Field(pattern=CURSOR, max_length=2048, description="next_cursor of the previous page"),
    Rule(what="pass next_cursor of the previous page as it is"),
]


# -- payments ------------------------------------------------------------------------------


class PaymentSearch(Listing):
    bank: Annotated[MspId, Field(description="Payer or payee bank")] | Absent = None
    payer_bank: MspId | Absent = None
    payee_bank: MspId | Absent = None
    status: Annotated[str, one_of(representations.PAYMENT_STATUSES)] | Absent = None
    currency: Annotated[NetworkCurrency, Field(description="Either leg of the payment")] | Absent = None
    min_amount: Annotated[Amount, Field(description="Inclusive, in currency (needs currency)")] | Absent = None
    max_amount: Annotated[Amount, Field(description="Inclusive, in currency (needs currency)")] | Absent = None
    since: Annotated[
        Moment | Absent, Field(alias="from", description="Created at or after (RFC 3339; send '+' as %2B)")
    ] = None
    until: Annotated[Moment | Absent, Field(alias="to", description="Created at or before (RFC 3339)")] = None
    page_size: SearchPageSize = v.DEFAULT_PAGE_SIZE
    cursor: SearchCursor = ""


def payment_filters(query: PaymentSearch, currencies: Currencies) -> JSON:
    """The contract's ``ListPayments`` filter from the query; refuses what it cannot mean."""
    filters: JSON = {}
    for name in ("bank", "payer_bank", "payee_bank", "status"):
        value = getattr(query, name)
        if value is not None:
            filters[name] = value
    currency = query.currency
    if currency is not None:
        filters["currency"] = currencies.known(currency, "currency")
    for name in ("min_amount", "max_amount"):
        amount = getattr(query, name)
        if amount is None:
            continue
        if currency is None:
            raise bad_request(f"{name} needs currency: an amount is a decimal in one currency's exponent")
        filters[name] = currencies.parse_amount(amount, currency, name)
    if "min_amount" in filters and "max_amount" in filters and filters["min_amount"] > filters["max_amount"]:
        raise bad_request("min_amount is above max_amount")
    for name in ("since", "until"):
        moment = getattr(query, name)
        if moment is not None:
            filters[name] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The contract's times are fixed-width UTC text, so text order is time order.
    if "since" in filters and "until" in filters and filters["since"] > filters["until"]:
        raise bad_request("from is after to")
    return filters


def payments_page(ledger: OversightLedger, filters: JSON, page_size: int, start: str) -> tuple[list[JSON], str | None]:
    """Up to ``page_size`` matching records from ``start`` on, and where the next page starts."""
    found: list[JSON] = []
    bookmark = start
    for _ in range(MAX_CALLS_PER_PAGE):
        query = {**filters, "page_size": page_size - len(found), "scan_limit": SCAN_PER_CALL}
        if bookmark:
            query["bookmark"] = bookmark
        page = ledger.search_payments(query)
        found += [item for item in page.get("payments") or [] if isinstance(item, dict)]
        bookmark = str(page.get("bookmark") or "")
        if not bookmark or len(found) >= page_size:
            break
    return found, bookmark or None


def every_payment(ledger: OversightLedger, filters: JSON, limit: int | None = None) -> Iterator[JSON]:
    """Every matching record, newest first; refuses (before the first byte is sent) past ``limit``
    (``MAX_EXPORT_ROWS`` unless given)."""
    limit = MAX_EXPORT_ROWS if limit is None else limit
    records: list[JSON] = []
    bookmark = ""
    while True:
        query: JSON = {**filters, "page_size": CONTRACT_PAGE, "scan_limit": SCAN_PER_CALL}
        if bookmark:
            query["bookmark"] = bookmark
        page = ledger.search_payments(query)
        records += [item for item in page.get("payments") or [] if isinstance(item, dict)]
        if len(records) > limit:
            raise ApiProblem(
                400,
                "export_too_large",
                f"more than {limit} payments match; narrow the export with from and to (or other filters)",
            )
        bookmark = str(page.get("bookmark") or "")
        if not bookmark:
            return iter(records)


def payment_view(record: JSON, currencies: Currencies) -> JSON:
    """The public record: status, amounts, timeline, and the hash the details can be checked against."""
    view = representations.payment(record, currencies)
    for private in ("payer_account", "payee_account", "remittance"):
        view.pop(private, None)
    version = record.get("corridor_version")
    view["corridor_version"] = version if isinstance(version, int) and not isinstance(version, bool) else None
    view["details_hash"] = record.get("details_hash")
    return view


def payment_row(view: JSON) -> list[Any]:
    reached = {step["status"]: step["at"] for step in view["timeline"]}
    return [
        view["payment_id"], view["status"], view["payer_bank"], view["payee_bank"], view["currency"],
        view["amount"], view["payee_currency"], view["payee_amount"], view["rate"], view["reason"],
        view["created_at"], reached.get("initiated"), reached.get("completed"), reached.get("rejected"),
        reached.get("refunded"), view["cycle_id"], view["corridor_version"], view["details_hash"],
    ]  # fmt: skip


# -- positions ------------------------------------------------------------------------------


def net_positions(ledger: OversightLedger) -> tuple[int, dict[str, dict[str, int]]]:
    """Each bank's net position per currency over completed payments not yet in a settlement cycle.

    A payment makes the payer bank owe the payee bank what the payee bank delivered, in the
    payee's currency; a positive position is money the bank is to receive.
    """
    totals: dict[str, dict[str, int]] = {}
    count = 0
    for payment in every_payment(ledger, {"status": "completed"}, limit=10**9):
        if payment.get("cycle_id"):
            continue
        currency = str(payment.get("payee_currency") or payment.get("currency"))
        amount = payment.get("payee_amount", payment.get("amount"))
        if isinstance(amount, bool) or not isinstance(amount, int):
            continue
        payer, payee = str(payment.get("payer_bank")), str(payment.get("payee_bank"))
        totals.setdefault(payer, {}).setdefault(currency, 0)
        totals.setdefault(payee, {}).setdefault(currency, 0)
        totals[payer][currency] -= amount
        totals[payee][currency] += amount
        count += 1
    return count, totals


# -- settlement -------------------------------------------------------------------------------


def cycle_view(cycle: JSON, currencies: Currencies) -> JSON:
    """A cycle as the banks see it, plus the banks that have not confirmed their leg yet."""
    view = representations.settlement_cycle(cycle, currencies)
    view["pending_banks"] = [bank for bank, leg in view["confirmations"].items() if not leg["confirmed"]]
    return view


def cycle_row(view: JSON) -> list[Any]:
    return [
        view["cycle_id"], view["status"], view["opened_by"], view["opened_at"], view["settled_at"],
        " ".join(view["banks"]), " ".join(view["pending_banks"]), view["payments"],
    ]  # fmt: skip


# -- corridor policy --------------------------------------------------------------------------


def policy_view(policy: JSON, currencies: Currencies) -> JSON:
    """A version of the corridor policy with its caps in decimal strings."""
    caps = []
    for cap in policy.get("caps") or []:
        if not isinstance(cap, dict):
            continue
        currency = str(cap.get("currency"))
        caps.append(
            {
                "currency": currency,
                "from": cap.get("from"),
                "to": cap.get("to"),
                "per_payment": _money(cap.get("per_payment"), currency, currencies),
                "daily": _money(cap.get("daily"), currency, currencies),
            }
        )
    rules = []
    for rule in policy.get("rules") or []:
        if not isinstance(rule, dict):
            continue
        rules.append(
            {
                "currency": rule.get("currency"),
                "cross_border_only": bool(rule.get("cross_border_only", False)),
                "allowed": [list(pair) for pair in rule["allowed"]] if isinstance(rule.get("allowed"), list) else None,
            }
        )
    return {
        "version": policy.get("version"),
        "rules": rules,
        "caps": caps,
        "note": policy.get("note"),
        "changed_at": representations.timestamp(policy.get("changed_at")),
        "tx_id": policy.get("tx_id"),
    }


def policy_rows(view: JSON) -> Iterator[list[Any]]:
    """One row per rule and per cap of a version (a version with neither still gets a row)."""
    head = [view["version"], view["changed_at"], view["tx_id"], view["note"]]
    rows = 0
    for rule in view["rules"]:
        allowed = " ".join("-".join(pair) for pair in rule["allowed"] or [])
        yield [*head, "rule", rule["currency"], rule["cross_border_only"], allowed, None, None, None, None]
        rows += 1
    for cap in view["caps"]:
        yield [*head, "cap", cap["currency"], None, None, cap["from"], cap["to"], cap["per_payment"], cap["daily"]]
        rows += 1
    if rows == 0:
        yield [*head, None, None, None, None, None, None, None, None]


POLICY_COLUMNS = (
    "version", "changed_at", "tx_id", "note", "kind", "currency", "cross_border_only", "allowed_pairs",
    "from", "to", "per_payment", "daily",
)  # fmt: skip


def _money(value: Any, currency: str, currencies: Currencies) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return currencies.format_amount(value, currency)


def payment_id_in_path(value: str) -> str:
    if not re.fullmatch(PAYMENT_ID, value):
        raise bad_request("payment_id in the path must be 64 lowercase hex digits (an interbank payment's id)")
    return value


# -- corridor policy: a new version from the regulator, and what each capped corridor used --------

MAX_POLICY_ITEMS = 100
NOTE_MAX = 200


def _entries(value: Any) -> Any:
    """A list of objects, at most ``MAX_POLICY_ITEMS``, refused in one sentence otherwise (each
    entry's own fields are refused by name: ``caps[1]: daily ...``)."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise PydanticCustomError("entries", "must be a list of objects")
    if len(value) > MAX_POLICY_ITEMS:
        raise PydanticCustomError("entries", f"may hold at most {MAX_POLICY_ITEMS} entries")
    return value


class CorridorRuleRequest(Body):
    """One per currency; cross_border_only, allowed, or both"""

    currency: Currency
    cross_border_only: Annotated[
        bool, Field(description="Refused between two accounts of one jurisdiction")
    ] | Absent = None
    allowed: Annotated[
        list[Annotated[list[Jurisdiction], Field(min_length=2, max_length=2)]],
        Field(
            description="Only between these pairs of account jurisdictions (either way); "
            'a domestic movement needs a pair like ["US", "US"]'
        ),
        worded('must be a list of [jurisdiction, jurisdiction] pairs such as ["US", "HK"]'),
    ] | Absent = None


class CorridorCapRequest(Body):
    """One per (currency, from, to); per_payment, daily, or both"""

    currency: Annotated[Currency, Field(description="The currency the payer pays in")]
    source: Annotated[Jurisdiction, Field(alias="from", description="Jurisdiction of the payer bank")]
    to: Annotated[Jurisdiction, Field(description="Jurisdiction of the payee bank")]
    per_payment: Amount | Absent = None
    daily: Annotated[
        Amount, Field(description="Per payer bank and UTC day; a refunded payment still counts")
    ] | Absent = None


class CorridorPolicyRequest(Body):
    """The whole new version: rules and caps not listed are dropped"""

    base_version: Annotated[
        int,
        Field(ge=1, description="The version this change starts from; refused (409) if another change came first"),
        worded(
            "is required: the version this change starts from (GET /v1/corridor-policy), "
            "so that a change made meanwhile by someone else is not overwritten"
        ),
    ]
    rules: Annotated[list[CorridorRuleRequest], Field(max_length=MAX_POLICY_ITEMS), BeforeValidator(_entries)]
    caps: Annotated[
        list[CorridorCapRequest], Field(default_factory=list, max_length=MAX_POLICY_ITEMS), BeforeValidator(_entries)
    ]
    note: Annotated[str, text(NOTE_MAX, blank=True, description="Public: why the policy changes")] | Absent = None


def policy_request(body: CorridorPolicyRequest, currencies: Currencies) -> JSON:
    """The contract's ``SetCorridorPolicy`` argument from the HTTP body (caps in decimal strings)."""
    policy: JSON = {"base_version": body.base_version, "rules": [], "caps": []}
    for index, rule in enumerate(body.rules):
        with _within(f"rules[{index}]"):
            policy["rules"].append(_rule(rule, currencies))
    for index, cap in enumerate(body.caps):
        with _within(f"caps[{index}]"):
            policy["caps"].append(_cap(cap, currencies))
    if body.note:
        policy["note"] = body.note
    return policy


@contextmanager
def _within(where: str) -> Iterator[None]:
    """Name the list entry in a refusal: 'caps[1]: daily has more than 2 decimal places'."""
    try:
        yield
    except ApiProblem as problem:
        raise ApiProblem(problem.status, problem.code, f"{where}: {problem.detail}") from None
    except MoneyError as error:
        raise ApiProblem(400, error.code, f"{where}: {error.message}") from None


def _rule(rule: CorridorRuleRequest, currencies: Currencies) -> JSON:
    parsed: JSON = {"currency": currencies.known(rule.currency, "currency")}
    if rule.cross_border_only is not None:
        parsed["cross_border_only"] = rule.cross_border_only
    if rule.allowed is not None:
        parsed["allowed"] = rule.allowed
    if len(parsed) == 1:
        raise bad_request("cross_border_only or allowed is required")
    return parsed


def _cap(cap: CorridorCapRequest, currencies: Currencies) -> JSON:
    currency = currencies.known(cap.currency, "currency")
    parsed: JSON = {"currency": currency, "from": cap.source, "to": cap.to}
    for limit in ("per_payment", "daily"):
        amount = getattr(cap, limit)
        parsed[limit] = None if amount is None else currencies.parse_amount(amount, currency, limit)
    if parsed["per_payment"] is None and parsed["daily"] is None:
        raise bad_request('per_payment or daily is required (a decimal string such as "1000.00")')
    return parsed


class UsageQuery(Listing):
    day: Annotated[Day | Absent, Field(description="UTC day (default: today)")] = None


def corridor_usage(ledger: OversightLedger, day: date, banks: list[JSON]) -> list[JSON]:
    """Every cap of the policy in force with what each bank of its ``from`` jurisdiction sent on ``day``.

    A payer bank's count in the contract grows with each payment initiated under a version
    that had a daily cap on that corridor (the payment record names its version), so the
    same sum over the public records gives the regulator the count each bank is held to,
    without reading any bank's books.
    """
    history = [item for item in ledger.get_corridor_policy_history().get("versions") or [] if isinstance(item, dict)]
    daily_capped = {
        version.get("version"): {
            (cap.get("currency"), cap.get("from"), cap.get("to"))
            for cap in version.get("caps") or []
            if isinstance(cap, dict) and cap.get("daily") is not None
        }
        for version in history
    }
    jurisdiction = {str(bank.get("msp_id")): str(bank.get("jurisdiction")) for bank in banks}
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    window = {
        "since": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "until": (start + timedelta(days=1) - timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    sent: dict[tuple[str, str, str, str], list[int]] = {}
    for payment in every_payment(ledger, window, limit=10**9):
        payer = str(payment.get("payer_bank"))
        corridor = (payment.get("currency"), jurisdiction.get(payer), jurisdiction.get(str(payment.get("payee_bank"))))
        amount = payment.get("amount")
        if corridor in daily_capped.get(payment.get("corridor_version"), set()) and isinstance(amount, int):
            totals = sent.setdefault((str(corridor[0]), str(corridor[1]), str(corridor[2]), payer), [0, 0])
            totals[0] += amount
            totals[1] += 1
    usage: list[JSON] = []
    for cap in (history[0].get("caps") if history else None) or []:
        currency, source, target = str(cap["currency"]), str(cap["from"]), str(cap["to"])
        senders = sorted(msp for msp, where in jurisdiction.items() if where == source)
        rows = []
        for bank in senders:
            total, count = sent.get((currency, source, target, bank), [0, 0])
            daily = cap.get("daily")
            rows.append(
                {
                    "bank": bank,
                    "sent": total,
                    "payments": count,
                    "remaining": None if daily is None else max(daily - total, 0),
                }
            )
        usage.append({**cap, "banks": rows})
    return usage


def usage_view(usage: list[JSON], day: date, currencies: Currencies) -> JSON:
    corridors = []
    for cap in usage:
        currency = str(cap["currency"])
        corridors.append(
            {
                "currency": currency,
                "from": cap["from"],
                "to": cap["to"],
                "per_payment": _money(cap.get("per_payment"), currency, currencies),
                "daily": _money(cap.get("daily"), currency, currencies),
                "banks": [
                    {
                        "bank": row["bank"],
                        "sent": currencies.format_amount(row["sent"], currency),
                        "payments": row["payments"],
                        "remaining": _money(row["remaining"], currency, currencies),
                    }
                    for row in cap["banks"]
                ],
            }
        )
    return {"day": day.isoformat(), "corridors": corridors}


USAGE_COLUMNS = ("day", "currency", "from", "to", "per_payment", "daily", "bank", "sent", "payments", "remaining")


def usage_rows(view: JSON) -> Iterator[list[Any]]:
    for cap in view["corridors"]:
        for row in cap["banks"]:
            yield [
                view["day"], cap["currency"], cap["from"], cap["to"], cap["per_payment"], cap["daily"],
                row["bank"], row["sent"], row["payments"], row["remaining"],
            ]  # fmt: skip
