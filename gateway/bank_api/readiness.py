"""Readiness: can this gateway make a payment and have it completed, now?

A peer answers calls a second or two after it starts, long before it can carry a payment: it must
also see the other banks' peers through gossip (an interbank payment hands its details to the payee
bank's peer at endorsement, decision 0004) and must have caught up with the chain (endorsing on old
state only buys read conflicts). So ready means, in this order:

1. the gateway's database answers;
2. the bank's peer answers, and its chaincode answers a query;
3. the peer sees a peer of every other bank on the channel (its discovery service, i.e. gossip
   membership) - or of at least one, with ``readiness_requires_all_banks`` off;
4. the peer is at most ``readiness_max_blocks_behind`` blocks behind the highest ledger height it
   knows of on the channel.

The first unmet condition is the answer's problem code, with ``Retry-After``; ``checks`` says what
each check found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.bank_api.ledger import (
    ChaincodeUnavailable,
    CounterpartyUnreachable,
    LedgerError,
    LedgerUnavailable,
    PeerUnreachable,
)

if TYPE_CHECKING:
    from gateway.bank_api.app import Services

READINESS_CODES: dict[str, str] = {
    "database_unavailable": "the gateway's database does not answer",
    PeerUnreachable.code: "the bank's peer does not answer",
    ChaincodeUnavailable.code: "the peer answers but the bank's chaincode does not",
    CounterpartyUnreachable.code: (
        "the peer sees no peer of one or more other banks on the channel (gossip membership), "
        "so payments to them cannot be made yet"
    ),
    "peer_catching_up": "the peer is still catching up with the channel's blocks",
    LedgerUnavailable.code: "the ledger does not answer for another reason",
}


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)
    code: str = ""
    detail: str = ""
    retry_after: int = 5
    missing_banks: list[str] = field(default_factory=list)

    def not_ready(self, code: str, detail: str, retry_after: int = 5) -> Readiness:
        self.ready, self.code, self.detail, self.retry_after = False, code, detail, retry_after
        return self


def check_readiness(services: Services) -> Readiness:
    """Run the checks of the module docstring in order; stop at the first that fails."""
    result = Readiness(ready=True)
    checks = result.checks
    try:
        with services.db.session(write=False) as session:
            session.connection().exec_driver_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "does not answer"
        return result.not_ready("database_unavailable", READINESS_CODES["database_unavailable"])
    ledger = services.ledger
    try:
        ledger.ping()
        checks["peer"] = checks["chaincode"] = "ok"
    except PeerUnreachable as error:
        checks["peer"] = "does not answer"
        return result.not_ready(error.code, READINESS_CODES[error.code], error.retry_after)
    except ChaincodeUnavailable as error:
        checks["peer"], checks["chaincode"] = "ok", "does not answer"
        return result.not_ready(error.code, READINESS_CODES[error.code], error.retry_after)
    except LedgerUnavailable as error:
        checks["peer"] = f"unavailable ({error.code})"
        return result.not_ready(LedgerUnavailable.code, READINESS_CODES[LedgerUnavailable.code], error.retry_after)
    except LedgerError:
        checks["chaincode"] = "fails"
        return result.not_ready(ChaincodeUnavailable.code, READINESS_CODES[ChaincodeUnavailable.code])
    try:
        view = ledger.channel_view()
        others = _other_banks(services.reference_data(), services.msp_id)
    except LedgerUnavailable as error:
        checks["channel"] = f"unavailable ({error.code})"
        return result.not_ready(error.code, READINESS_CODES.get(error.code, error.public_detail), error.retry_after)
    except LedgerError:
        checks["channel"] = "membership cannot be read"
        return result.not_ready(LedgerUnavailable.code, READINESS_CODES[LedgerUnavailable.code])
    seen = sorted(bank for bank in others if bank in view.members)
    missing = sorted(bank for bank in others if bank not in view.members)
    checks["channel"] = f"sees {', '.join(seen) or 'no other bank'}" + (
        f"; not {', '.join(missing)}" if missing else ""
    )
    if missing and (services.config.readiness_requires_all_banks or not seen):
        result.missing_banks = missing
        detail = f"the bank's peer does not see {', '.join(missing)} on the channel yet"
        return result.not_ready(CounterpartyUnreachable.code, detail)
    highest = max([view.height, *view.members.values()])
    behind = highest - view.height
    checks["ledger"] = f"height {view.height}, {behind} block(s) behind the channel"
    if behind > services.config.readiness_max_blocks_behind:
        return result.not_ready(
            "peer_catching_up", f"the bank's peer is {behind} blocks behind the channel", retry_after=2
        )
    return result


def _other_banks(reference: dict[str, Any], own: str) -> list[str]:
    banks = reference.get("banks")
    found = []
    for bank in banks if isinstance(banks, list) else []:
        msp = bank.get("msp_id") if isinstance(bank, dict) else None
        if isinstance(msp, str) and msp != own:
            found.append(msp)
    return found
