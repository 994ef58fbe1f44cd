"""Names and membership of the deposit-token private data collections.

Shared by the contract (which reads and writes them) and the network tool (which
generates the collections config from the topology file), so the two can never
disagree about a name.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations


def books_collection(bank_msp_id: str) -> str:
    """The bank's own private collection: its customers' accounts and balances."""
    return f"books-{bank_msp_id}"


def bilateral_collection(bank_a_msp_id: str, bank_b_msp_id: str) -> str:
    """The collection shared by two banks for the private details of payments between them."""
    if bank_a_msp_id == bank_b_msp_id:
        raise ValueError("a bilateral collection needs two different banks")
    first, second = sorted((bank_a_msp_id, bank_b_msp_id))
    return f"bilateral-{first}-{second}"


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

    One private collection per bank, endorsed by that bank alone, and one bilateral
    collection per pair of banks, endorsed by either of the two (the payer bank creates
    the details, the payee bank reads them). Bilateral collections push the details to
    the counterparty's peer at endorsement when it can be reached (``maxPeerCount`` 1), and
    do not require it (``requiredPeerCount`` 0): a payment to a bank whose peer is down is
    made all the same, and that peer fetches the details from the payer's peer when it is
    back (decision 0031). One supply collection per bank, readable by every bank and
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
                "name": books_collection(msp),
                "policy": member_policy([msp]),
                "requiredPeerCount": 0,
                "maxPeerCount": 0,
                "blockToLive": 0,
                "memberOnlyRead": True,
                "memberOnlyWrite": True,
                "endorsementPolicy": {"channelConfigPolicy": org_endorsement_policy(msp)},
            }
        )
    for first, second in combinations(sorted(bank_msp_ids), 2):
        config.append(
            {
                "name": bilateral_collection(first, second),
                "policy": member_policy([first, second]),
                "requiredPeerCount": 0,
                "maxPeerCount": 1,
                "blockToLive": 0,
                "memberOnlyRead": True,
                "memberOnlyWrite": True,
                "endorsementPolicy": {"signaturePolicy": signature_policy_any([first, second])},
            }
        )
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
