"""Key-level (state-based) endorsement policies.

``stub.set_state_validation_parameter(key, policy)`` attaches a policy to one key: from
then on a transaction that writes the key is valid only if its endorsements satisfy that
policy, whatever the chaincode's own policy says. The policy is a serialized
``common.SignaturePolicyEnvelope``. This module builds the common case, "these orgs
must endorse", the way Fabric's Go ``statebased`` package does: one principal per org
with the peer role, sorted by MSP id (so every endorser produces identical bytes), and
an N-out-of rule that defaults to all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

ROLES = {
    "member": msp_principal_pb2.MSPRole.MEMBER,
    "admin": msp_principal_pb2.MSPRole.ADMIN,
    "client": msp_principal_pb2.MSPRole.CLIENT,
    "peer": msp_principal_pb2.MSPRole.PEER,
    "orderer": msp_principal_pb2.MSPRole.ORDERER,
}
_ROLE_NAMES = {value: name for name, value in ROLES.items()}


def orgs_must_endorse(msp_ids: Iterable[str], n: int | None = None, role: str = "peer") -> bytes:
    """A policy that ``n`` (default: all) of these orgs' ``role`` members must sign.

    Returns the serialized ``SignaturePolicyEnvelope`` for ``set_state_validation_parameter``.
    """
    orgs = sorted(set(msp_ids))
    if not orgs:
        raise ValueError("an endorsement policy needs at least one org")
    if any(not msp for msp in orgs):
        raise ValueError("an MSP id must not be empty")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(sorted(ROLES))}")
    required = len(orgs) if n is None else n
    if not 1 <= required <= len(orgs):
        raise ValueError(f"n must be between 1 and {len(orgs)}, got {required}")
    identities = [
        msp_principal_pb2.MSPPrincipal(
            principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
            principal=msp_principal_pb2.MSPRole(msp_identifier=msp, role=ROLES[role]).SerializeToString(),
        )
        for msp in orgs
    ]
    rules = [policies_pb2.SignaturePolicy(signed_by=index) for index in range(len(orgs))]
    envelope = policies_pb2.SignaturePolicyEnvelope(
        version=0,
        rule=policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=required, rules=rules)),
        identities=identities,
    )
    return envelope.SerializeToString(deterministic=True)


@dataclass(frozen=True)
class KeyEndorsers:
    """A flat "n of these orgs" policy read back from a key's validation parameter."""

    n: int
    msp_ids: tuple[str, ...]
    role: str = "peer"


def read_key_endorsers(policy: bytes) -> KeyEndorsers | None:
    """Parse a policy made by :func:`orgs_must_endorse`; ``None`` for an empty parameter.

    Raises ``ValueError`` for a policy of another shape (nested rules, non-role principals).
    """
    if not policy:
        return None
    envelope = policies_pb2.SignaturePolicyEnvelope.FromString(policy)
    if envelope.rule.WhichOneof("Type") != "n_out_of":
        raise ValueError("not an n-out-of policy")
    msp_ids: list[str] = []
    roles: set[str] = set()
    for identity in envelope.identities:
        if identity.principal_classification != msp_principal_pb2.MSPPrincipal.ROLE:
            raise ValueError("the policy names a principal that is not an org role")
        role = msp_principal_pb2.MSPRole.FromString(identity.principal)
        msp_ids.append(role.msp_identifier)
        roles.add(_ROLE_NAMES.get(role.role, str(role.role)))
    for rule in envelope.rule.n_out_of.rules:
        if rule.WhichOneof("Type") != "signed_by":
            raise ValueError("the policy nests rules")
    if len(roles) > 1:
        raise ValueError("the policy mixes roles")
    return KeyEndorsers(n=envelope.rule.n_out_of.n, msp_ids=tuple(msp_ids), role=roles.pop() if roles else "peer")
