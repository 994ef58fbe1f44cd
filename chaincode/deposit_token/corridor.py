"""Corridor policy: which currency may move between which jurisdictions, and how much.

The regulator sets it (``SetCorridorPolicy``); no bank can change it, because the key
carries a state-based policy naming the regulator. It has two parts.

Rules, one per currency at most (a currency without a rule moves freely), on the
jurisdictions of the two *accounts*:

- ``{"currency": "CNH", "cross_border_only": true}``: refused when the payer's and the
  payee's account jurisdictions are the same (no domestic circulation of offshore yuan);
- ``{"currency": "X", "allowed": [["US", "HK"], ...]}``: only between the listed pairs of
  jurisdictions, in either direction; a domestic movement needs a pair like ``["US", "US"]``.

Both keys may appear in one rule; both must then hold. Rules are checked on every
movement between two customer accounts: intra-bank transfers, and interbank payments
when the payee bank completes them (only then are both accounts' jurisdictions known to
one peer). At initiation the payer bank already refuses a payment whose payer
jurisdiction appears in no allowed pair, since no payee could make it pass.

Caps, one per (currency, from, to) at most, on the jurisdictions of the two *banks*
(public, so known at initiation and visible to the regulator in every payment record):
``{"currency": "USD", "from": "US", "to": "HK", "per_payment": 100000, "daily": 500000}``
in minor units, either limit may be null. A cap is directional (outflows and inflows of
a jurisdiction are managed apart) and applies to the currency the payer pays in.
``per_payment`` refuses a single larger payment. ``daily`` counts, per payer bank, what
it sent in the corridor since 00:00 UTC of the transaction's day; the count lives in the
payer bank's books (a new key there can be written only by that bank's peer, so no other
bank can inflate or reset it) and is read and written by each initiation in that
corridor, which is why only corridors with a daily cap pay for it. A refunded payment
still counts: the cap limits what was sent that day. See docs/decisions/0021.

Versions: every change makes a new version (1 is the policy written at initialisation).
The current version lives under one key; each change first archives the version it
replaces under a key named after the changing transaction, and links the new version to
it (``previous``), so the history is a chain that starts at the protected key. A bank
cannot insert a version into it (the chain is reached only through regulator-endorsed
keys) nor squat on a future archive key (its name holds a transaction id nobody can
predict). Each payment records the version in force when it was initiated; the payee
bank completes it under that version, so a change applies to the next payment and not
to one already under way.
"""

from __future__ import annotations

from typing import Any

from chaincode.deposit_token import keys
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.money import parse_amount
from chaincode.deposit_token.reference import DEFAULT_CORRIDOR_POLICY, Bank, Config
from chaincode.deposit_token.requests import JURISDICTION, Request

POLICY_FIELDS = ("rules", "caps", "note", "base_version")
CAP_FIELDS = ("currency", "from", "to", "per_payment", "daily")
MAX_NOTE = 200
MAX_RULES = 100
MAX_CAPS = 200
# The chain is walked in queries and, for a payment initiated under an older version, at
# completion; a bound keeps a very long history from making either unbounded.
MAX_HISTORY = 1000


# -- parsing ---------------------------------------------------------------------


def parse_policy(data: dict[str, Any], config: Config) -> Record:
    """The rules and caps of a new version (with its public note), from the regulator's JSON."""
    unknown = sorted(set(data) - set(POLICY_FIELDS))
    if "rules" not in data or unknown or not isinstance(data["rules"], list):
        raise refusal(
            "invalid_request",
            "a corridor policy is an object with 'rules' (a list), optionally 'caps', 'note' and 'base_version'",
        )
    caps = data.get("caps", [])
    if not isinstance(caps, list):
        raise refusal("invalid_request", "'caps' must be a list")
    if len(data["rules"]) > MAX_RULES or len(caps) > MAX_CAPS:
        raise refusal("invalid_request", f"a corridor policy holds at most {MAX_RULES} rules and {MAX_CAPS} caps")
    note = None
    if data.get("note") is not None:
        # Public, like a suspension reason: one line of text, never customer data.
        note = Request({"note": data["note"]}, ["note"]).text("note", max_length=MAX_NOTE)
    return {
        "rules": _parse_rules(data["rules"], config),
        "caps": _parse_caps(caps, config),
        "note": note,
    }


def _parse_rules(items: list[Any], config: Config) -> list[Record]:
    rules: list[Record] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"rules[{index}]"
        if (
            not isinstance(item, dict)
            or "currency" not in item
            or set(item) - {"currency", "cross_border_only", "allowed"}
        ):
            raise refusal("invalid_request", f"'{where}' must hold 'currency' and 'cross_border_only' and/or 'allowed'")
        currency = item["currency"]
        if not isinstance(currency, str) or currency not in config.currencies:
            raise refusal("unknown_currency", f"'{where}.currency' is not in the reference data")
        if currency in seen:
            raise refusal("invalid_request", f"'{where}': {currency} has a rule already")
        seen.add(currency)
        rule: Record = {"currency": currency}
        if "cross_border_only" in item:
            if not isinstance(item["cross_border_only"], bool):
                raise refusal("invalid_request", f"'{where}.cross_border_only' must be true or false")
            rule["cross_border_only"] = item["cross_border_only"]
        if "allowed" in item:
            pairs = item["allowed"]
            if not isinstance(pairs, list) or not all(
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(j, str) and JURISDICTION.fullmatch(j) for j in pair)
                for pair in pairs
            ):
                raise refusal(
                    "invalid_request",
                    f"'{where}.allowed' must be a list of [jurisdiction, jurisdiction] pairs",
                )
            rule["allowed"] = [list(pair) for pair in sorted({tuple(sorted(pair)) for pair in pairs})]
        if len(rule) == 1:
            raise refusal("invalid_request", f"'{where}' needs 'cross_border_only' or 'allowed'")
        rules.append(rule)
    return sorted(rules, key=lambda r: r["currency"])


def _parse_caps(items: list[Any], config: Config) -> list[Record]:
    caps: list[Record] = []
    seen: set[tuple[str, str, str]] = set()
    for index, item in enumerate(items):
        where = f"caps[{index}]"
        if not isinstance(item, dict) or set(item) - set(CAP_FIELDS):
            raise refusal("invalid_request", f"'{where}' must be an object of {', '.join(CAP_FIELDS)}")
        currency = item.get("currency")
        if not isinstance(currency, str) or currency not in config.currencies:
            raise refusal("unknown_currency", f"'{where}.currency' is not in the reference data")
        ends: list[str] = []
        for end in ("from", "to"):
            value = item.get(end)
            if not isinstance(value, str) or not JURISDICTION.fullmatch(value):
                raise refusal("invalid_request", f"'{where}.{end}' must be 2 to 4 capital letters (a jurisdiction)")
            ends.append(value)
        limits: dict[str, int | None] = {}
        for limit in ("per_payment", "daily"):
            value = item.get(limit)
            limits[limit] = None if value is None else parse_amount(value, f"{where}.{limit}")
        if limits["per_payment"] is None and limits["daily"] is None:
            raise refusal("invalid_request", f"'{where}' needs 'per_payment' or 'daily' (minor units)")
        corridor = (currency, ends[0], ends[1])
        if corridor in seen:
            raise refusal("invalid_request", f"'{where}': {cap_name(*corridor)} has a cap already")
        seen.add(corridor)
        caps.append({"currency": currency, "from": ends[0], "to": ends[1], **limits})
    return sorted(caps, key=lambda c: (c["currency"], c["from"], c["to"]))


def parse_base_version(data: dict[str, Any]) -> int | None:
    value = data.get("base_version")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise refusal("invalid_request", "'base_version' must be the version number the change starts from")
    return value


# -- reading -----------------------------------------------------------------------


def _normalised(record: Record) -> Record:
    # A policy written before versions existed is version 1 with no caps and no history.
    return {
        "version": int(record.get("version", 1)),
        "rules": list(record.get("rules", [])),
        "caps": list(record.get("caps", [])),
        "note": record.get("note"),
        "changed_at": record.get("changed_at"),
        "tx_id": record.get("tx_id"),
        "previous": record.get("previous"),
    }


def load_policy(ledger: Ledger) -> Record:
    """The version in force, with its ``previous`` link."""
    return _normalised(ledger.get(keys.corridor()) or DEFAULT_CORRIDOR_POLICY)


def public_policy(policy: Record) -> Record:
    """A version as callers see it: the link between versions is the contract's business."""
    return {name: value for name, value in policy.items() if name != "previous"}


def history(ledger: Ledger) -> list[Record]:
    """Every version, newest first, following the chain from the version in force."""
    versions = [load_policy(ledger)]
    while versions[-1]["previous"] and len(versions) < MAX_HISTORY:
        archived = ledger.get(versions[-1]["previous"])
        if archived is None:
            break
        versions.append(_normalised(archived))
    return versions


def policy_version(ledger: Ledger, version: int | None, current: Record | None = None) -> Record:
    """The policy of ``version`` (a payment's); the one in force when it is None or not found.

    A version is found only along the chain from the protected key, so a version number a
    payer bank's altered chaincode wrote into a record can name only a policy the regulator
    really set.
    """
    in_force = current or load_policy(ledger)
    policy = in_force
    steps = 0
    while version is not None and policy["version"] > version and policy["previous"] and steps < MAX_HISTORY:
        archived = ledger.get(policy["previous"])
        if archived is None:
            break
        policy = _normalised(archived)
        steps += 1
    return policy if version is not None and policy["version"] == version else in_force


# -- checks ------------------------------------------------------------------------


def rule_for(policy: Record, currency: str) -> Record | None:
    return next((rule for rule in policy["rules"] if rule["currency"] == currency), None)


def check_rules(policy: Record, currency: str, payer_jurisdiction: str, payee_jurisdiction: str) -> None:
    rule = rule_for(policy, currency)
    if rule is None:
        return
    if rule.get("cross_border_only") and payer_jurisdiction == payee_jurisdiction:
        raise refusal(
            "corridor_forbidden",
            f"{currency} is cross-border only: it may not move between two accounts of one jurisdiction "
            f"(corridor rule {currency}, policy version {policy['version']})",
        )
    allowed = rule.get("allowed")
    if allowed is not None and sorted((payer_jurisdiction, payee_jurisdiction)) not in allowed:
        raise refusal(
            "corridor_forbidden",
            f"{currency} may move only between the jurisdiction pairs the corridor policy lists "
            f"(corridor rule {currency}, policy version {policy['version']})",
        )


def check_corridor(ledger: Ledger, currency: str, payer_jurisdiction: str, payee_jurisdiction: str) -> None:
    """The rules in force, for a movement happening now (an intra-bank transfer)."""
    check_rules(load_policy(ledger), currency, payer_jurisdiction, payee_jurisdiction)


def check_payer_side(policy: Record, currency: str, payer_jurisdiction: str) -> None:
    """At initiation: refuse when the payer's jurisdiction is in no allowed pair of the currency."""
    rule = rule_for(policy, currency)
    allowed = None if rule is None else rule.get("allowed")
    if allowed is not None and not any(payer_jurisdiction in pair for pair in allowed):
        raise refusal(
            "corridor_forbidden",
            f"{currency} may move only between the jurisdiction pairs the corridor policy lists, and none "
            f"includes the payer's jurisdiction (corridor rule {currency}, policy version {policy['version']})",
        )


def cap_name(currency: str, source: str, target: str) -> str:
    return f"{currency} {source}->{target}"


def cap_for(policy: Record, currency: str, source: str, target: str) -> Record | None:
    return next(
        (cap for cap in policy["caps"] if (cap["currency"], cap["from"], cap["to"]) == (currency, source, target)),
        None,
    )


def check_per_payment_cap(
    policy: Record, currency: str, source: str, target: str, amount: int, code: str = "corridor_cap_exceeded"
) -> Record | None:
    """Refuse an amount above the corridor's per-payment cap; returns the corridor's cap, if any."""
    cap = cap_for(policy, currency, source, target)
    if cap is not None and cap["per_payment"] is not None and amount > cap["per_payment"]:
        raise refusal(
            code,
            f"corridor cap {cap_name(currency, source, target)} (policy version {policy['version']}): "
            f"{amount} is above the {cap['per_payment']} allowed per payment",
        )
    return cap


def apply_caps(
    ledger: Ledger, policy: Record, payer_bank: Bank, payee_bank: Bank, books_collection: str,
    currency: str, amount: int,
) -> None:  # fmt: skip
    """At initiation: refuse what would cross a cap of the banks' corridor, else count it for the day."""
    source, target = payer_bank.jurisdiction, payee_bank.jurisdiction
    cap = check_per_payment_cap(policy, currency, source, target, amount)
    if cap is None or cap["daily"] is None:
        return
    day = ledger.now.date().isoformat()
    usage_key = keys.corridor_usage(currency, source, target, day)
    usage = ledger.get_private(books_collection, usage_key) or {"total": 0, "payments": 0}
    if usage["total"] + amount > cap["daily"]:
        raise refusal(
            "corridor_cap_exceeded",
            f"corridor cap {cap_name(currency, source, target)} (policy version {policy['version']}): "
            f"{payer_bank.msp_id} sent {usage['total']} in this corridor on {day} (UTC); {amount} more would "
            f"pass the daily cap of {cap['daily']}",
        )
    ledger.put_private(
        books_collection, usage_key, {"total": usage["total"] + amount, "payments": usage["payments"] + 1}
    )


# -- writing -----------------------------------------------------------------------


def set_policy(ledger: Ledger, config: Config, data: dict[str, Any]) -> Record:
    """Make the regulator's new version the one in force, archiving the one it replaces."""
    parsed = parse_policy(data, config)
    base_version = parse_base_version(data)
    current = load_policy(ledger)
    if base_version is not None and base_version != current["version"]:
        raise refusal(
            "invalid_state",
            f"the corridor policy is at version {current['version']}, not {base_version}: "
            "read it again and start the change from there",
        )
    archive_key = keys.corridor_version(current["version"], ledger.tx_id)
    ledger.put(archive_key, current)
    ledger.require_endorsers(archive_key, [config.regulator])
    policy: Record = {
        "version": current["version"] + 1,
        **parsed,
        "changed_at": ledger.now_iso,
        "tx_id": ledger.tx_id,
        "previous": archive_key,
    }
    ledger.put(keys.corridor(), policy)
    # Kept on every write: the key may have been created before this rule existed.
    ledger.require_endorsers(keys.corridor(), [config.regulator])
    ledger.emit(
        "CorridorPolicyChanged",
        {
            "version": policy["version"],
            "currencies": [rule["currency"] for rule in policy["rules"]],
            "caps": [cap_name(cap["currency"], cap["from"], cap["to"]) for cap in policy["caps"]],
        },
    )
    return public_policy(policy)
