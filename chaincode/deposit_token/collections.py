"""Names and membership of the deposit-token private data collections.

Shared by the contract (which reads and writes them) and the network tool (which
generates the collections config from the topology file), so the two can never
disagree about a name.
"""

from __future__ import annotations

from collections.abc import Iterable

IMPLICIT_PREFIX = "_implicit_org_"


def books_collection(bank_msp_id: str) -> str:
    """The bank's own private collection: its customers' accounts, balances and payment details.

    Fabric's implicit collection of the org: its only member is the bank, and a write to it
    is valid only with the org's ``Endorsement`` policy (``/Channel/Application/<org>/Endorsement``),
    exactly what an explicit books collection declared. It is not in the chaincode definition,
    which every peer deserializes for every private key a transaction writes, so a private write
    costs the same whatever the number of banks (docs/decisions/0036). Unlike the explicit
    collections it does not refuse another org's client a read (``memberOnlyRead`` is off for
    implicit collections): the contract refuses such callers itself (``reference.caller_org``),
    and only ``GetPaymentDetails``/``GetPvpDetails`` answer the counterparty bank.
    """
    return f"{IMPLICIT_PREFIX}{bank_msp_id}"


def supply_collection(issuer_msp_id: str) -> str:
    """The issuer's supply ledger: readable by every org, written only with the issuer's endorsement.

    Supply changes are blind-written deltas (one new key per change, so concurrent payments
    never collide on a counter). A new public key carries no state-based policy, so any org
    could forge one; a collection-level endorsement policy also covers new keys, which is
    why supply lives here and not in public state.
    """
    return f"supply-{issuer_msp_id}"


def regulator_collection(regulator_msp_id: str) -> str:
    """The regulator's records that every org reads and only the regulator writes (disclosure requests).

    Like a bank's supply collection: a collection-level endorsement policy also covers new keys,
    which a state-based policy cannot, so no bank can plant a request the regulator never made.
    """
    return f"regulator-{regulator_msp_id}"


def disclosure_collection(bank_msp_id: str) -> str:
    """What the bank disclosed to the regulator: held by the two of them, written only by the bank."""
    return f"disclosure-{bank_msp_id}"


def signature_policy_any(msp_ids: Iterable[str]) -> str:
    """Fabric signature-policy DSL: one peer of any of these orgs."""
    return "OR(" + ", ".join(f"'{msp}.peer'" for msp in sorted(msp_ids)) + ")"


def org_endorsement_policy(msp_id: str) -> str:
    """The org's own ``Endorsement`` policy in the channel config (``OR('<msp>.peer')``), by reference.

    Every validating peer deserializes the whole chaincode definition, collections included,
    once per private key a transaction writes; a reference is a few bytes where a signature
    policy is a tree of principals, so the definition stays small (docs/decisions/0011).
    """
    return f"/Channel/Application/{msp_id}/Endorsement"


def member_policy(msp_ids: Iterable[str]) -> str:
    """Fabric signature-policy DSL for collection membership (any member role of these orgs)."""
    return "OR(" + ", ".join(f"'{msp}.member'" for msp in sorted(msp_ids)) + ")"


def collections_config(bank_msp_ids: list[str], observer_msp_ids: Iterable[str] = ()) -> list[dict[str, object]]:
    """The collections config (as passed to ``peer lifecycle ... --collections-config``).

    A bank's books are Fabric's implicit collection of its org, which needs no entry here
    (``books_collection``), and no collection is shared by a pair of banks: the payee bank
    fetches a payment's details from the payer bank's peer and the contract checks them against
    the salted hash in the public record (docs/decisions/0036). So the definition grows by two
    small entries per bank instead of one per pair. One supply collection per bank, readable by every bank and
    every observer org (the regulator) and endorsed by the issuing bank alone. One disclosure
    collection per bank, held by the bank and the observers and endorsed by the bank alone;
    one collection per observer for its records, readable by everyone and endorsed by that
    observer alone (chaincode/deposit_token/disclosures.py).
    """
    observers = sorted(set(observer_msp_ids) - set(bank_msp_ids))
    everyone = sorted(bank_msp_ids) + observers
    config: list[dict[str, object]] = []
    for msp in sorted(bank_msp_ids):
        config.append(
            {
                "name": supply_collection(msp),
                "policy": member_policy(everyone),
                # Best effort push to every other org; no peer being down may block issuance.
                "requiredPeerCount": 0,
                "maxPeerCount": max(len(everyone) - 1, 0),
                "blockToLive": 0,
                "memberOnlyRead": True,
                "memberOnlyWrite": True,
                "endorsementPolicy": {"channelConfigPolicy": org_endorsement_policy(msp)},
            }
        )
    for msp in sorted(bank_msp_ids) if observers else ():
        config.append(
            {
                "name": disclosure_collection(msp),
                "policy": member_policy([msp, *observers]),
                # Pushed to the regulator's peer when possible; a peer that is down must not block an answer.
                "requiredPeerCount": 0,
                "maxPeerCount": len(observers),
                "blockToLive": 0,
                "memberOnlyRead": True,
                "memberOnlyWrite": True,
                "endorsementPolicy": {"channelConfigPolicy": org_endorsement_policy(msp)},
            }
        )
    for observer in observers:
        config.append(
            {
                "name": regulator_collection(observer),
                "policy": member_policy(everyone),
                "requiredPeerCount": 0,
                "maxPeerCount": max(len(everyone) - 1, 0),
                "blockToLive": 0,
                "memberOnlyRead": True,
                "memberOnlyWrite": True,
                "endorsementPolicy": {"channelConfigPolicy": org_endorsement_policy(observer)},
            }
        )
    return config
