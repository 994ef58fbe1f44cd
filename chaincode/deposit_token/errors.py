"""Refusals: a stable code in brackets, then a message that names the problem.

Callers branch on the code (``[insufficient_funds] ...``); people read the rest. A message
never repeats customer data (account ids, holder names, KYC references, remittance
text), because a refused endorsement's message can reach peer and gateway logs.
"""

from __future__ import annotations

import re

from chaincode.shim.contract import ContractError

STATUS_OF_CODE: dict[str, int] = {
    "invalid_request": 400,
    "invalid_amount": 400,
    "unknown_currency": 400,
    "unknown_bank": 404,
    "unknown_account": 404,
    "payment_not_found": 404,
    "escrow_not_found": 404,
    "pvp_not_found": 404,
    # Asked of the wrong bank's peer, or of the right one before it committed the block: retry.
    "details_not_here": 404,
    "cycle_not_found": 404,
    "disclosure_not_found": 404,
    "not_authorized": 403,
    "corridor_forbidden": 403,
    "currency_not_issued": 403,
    "account_exists": 409,
    "account_frozen": 409,
    # Like a frozen account, one bank level up: the caller may do this, just not while the
    # regulator suspends the bank; it may succeed again once the bank is reinstated.
    "bank_suspended": 409,
    "account_closed": 409,
    "account_not_empty": 409,
    "insufficient_funds": 409,
    "limit_exceeded": 409,
    # A corridor cap of the regulator (per payment or per day): a smaller payment, or one on a
    # later day, may pass, as with an account's own limits.
    "corridor_cap_exceeded": 409,
    "duplicate_reference": 409,
    "invalid_state": 409,
    "not_expired": 409,
    "nothing_to_settle": 409,
    "already_confirmed": 409,
    # A group of requests (InitiatePayments) refused as a whole because some of its items were:
    # the message is JSON, {"refused": [{position, code, message}, ...]}; the others may go again.
    "group_refused": 409,
}


def refusal(code: str, message: str) -> ContractError:
    """The error to raise for a refusal with this stable code."""
    return ContractError(f"[{code}] {message}", STATUS_OF_CODE[code])


_CODED = re.compile(r"\[([a-z_]+)\] (.*)", re.DOTALL)


def refusal_parts(error: ContractError) -> dict[str, str]:
    """A refusal as ``{code, message}``, for answers that carry several (a group's results)."""
    matched = _CODED.fullmatch(error.message)
    if matched is None:
        return {"code": "invalid_request", "message": error.message}
    return {"code": matched.group(1), "message": matched.group(2)}
