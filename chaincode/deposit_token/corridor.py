"""Corridor policy: which currency may move between which jurisdictions.

The regulator sets it; the chaincode checks it on every movement between two customer
accounts (intra-bank transfers, and interbank payments when the payee bank completes
them, because only then are both accounts' jurisdictions known to one peer).

Rules, one per currency at most (a currency without a rule moves freely):

- ``{"currency": "CNH", "cross_border_only": true}``: refused when the payer's and the
  payee's account jurisdictions are the same (no domestic circulation of offshore yuan);
- ``{"currency": "X", "allowed": [["US", "HK"], ...]}``: only between the listed pairs of
  jurisdictions, in either direction; a domestic movement needs a pair like ``["US", "US"]``.

Both keys may appear in one rule; both must then hold. After initialisation the policy is
``{"rules": [{"currency": "CNH", "cross_border_only": true}]}``.
"""

from __future__ import annotations

from typing import Any

from chaincode.deposit_token import keys
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger, Record
from chaincode.deposit_token.reference import DEFAULT_CORRIDOR_POLICY, Config
from chaincode.deposit_token.requests import JURISDICTION


def parse_policy(data: dict[str, Any], config: Config) -> Record:
    if set(data) != {"rules"} or not isinstance(data["rules"], list):
        raise refusal("invalid_request", "a corridor policy is an object with one key, 'rules', holding a list")
    rules: list[Record] = []
    seen: set[str] = set()
    for index, item in enumerate(data["rules"]):
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
            rule["allowed"] = sorted({tuple(sorted(pair)) for pair in pairs})
            rule["allowed"] = [list(pair) for pair in rule["allowed"]]
        if len(rule) == 1:
            raise refusal("invalid_request", f"'{where}' needs 'cross_border_only' or 'allowed'")
        rules.append(rule)
    return {"rules": sorted(rules, key=lambda r: r["currency"])}


def load_policy(ledger: Ledger) -> Record:
    return ledger.get(keys.corridor()) or DEFAULT_CORRIDOR_POLICY


def check_corridor(ledger: Ledger, currency: str, payer_jurisdiction: str, payee_jurisdiction: str) -> None:
    for rule in load_policy(ledger)["rules"]:
        if rule["currency"] != currency:
            continue
        if rule.get("cross_border_only") and payer_jurisdiction == payee_jurisdiction:
            raise refusal(
                "corridor_forbidden",
                f"{currency} is cross-border only: it may not move between two accounts of one jurisdiction",
            )
        allowed = rule.get("allowed")
        if allowed is not None and sorted((payer_jurisdiction, payee_jurisdiction)) not in allowed:
            raise refusal(
                "corridor_forbidden",
                f"{currency} may move only between the jurisdiction pairs the corridor policy lists",
            )


def set_policy(ledger: Ledger, config: Config, data: dict[str, Any]) -> Record:
    policy = parse_policy(data, config)
    ledger.put(keys.corridor(), policy)
    # Kept on every write: the key may have been created before this rule existed.
    ledger.require_endorsers(keys.corridor(), [config.regulator])
    ledger.emit("CorridorPolicyChanged", {"currencies": [rule["currency"] for rule in policy["rules"]]})
    return policy
