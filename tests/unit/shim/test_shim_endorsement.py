"""Key-level endorsement policies: the SignaturePolicyEnvelope Fabric validates against."""

from __future__ import annotations

import pytest
from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

from chaincode.shim.endorsement import KeyEndorsers, orgs_must_endorse, read_key_endorsers


def test_all_orgs_must_endorse_by_default() -> None:
    envelope = policies_pb2.SignaturePolicyEnvelope.FromString(orgs_must_endorse(["USBankMSP", "HKBankMSP"]))
    assert envelope.version == 0
    assert envelope.rule.n_out_of.n == 2
    assert [rule.signed_by for rule in envelope.rule.n_out_of.rules] == [0, 1]
    roles = [msp_principal_pb2.MSPRole.FromString(i.principal) for i in envelope.identities]
    assert [(r.msp_identifier, r.role) for r in roles] == [
        ("HKBankMSP", msp_principal_pb2.MSPRole.PEER),
        ("USBankMSP", msp_principal_pb2.MSPRole.PEER),
    ]
    assert all(i.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE for i in envelope.identities)


def test_bytes_do_not_depend_on_order_or_duplicates() -> None:
    assert orgs_must_endorse(["B", "A", "B"]) == orgs_must_endorse(["A", "B"])


def test_n_out_of_and_roles() -> None:
    policy = orgs_must_endorse(["A", "B", "C"], n=2, role="member")
    assert read_key_endorsers(policy) == KeyEndorsers(n=2, msp_ids=("A", "B", "C"), role="member")


@pytest.mark.parametrize(
    ("orgs", "n", "role", "complaint"),
    [
        ([], None, "peer", "at least one org"),
        (["A", ""], None, "peer", "must not be empty"),
        (["A"], 2, "peer", "between 1 and 1"),
        (["A", "B"], 0, "peer", "between 1 and 2"),
        (["A"], None, "king", "unknown role"),
    ],
)
def test_bad_policies_are_refused(orgs: list[str], n: int | None, role: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        orgs_must_endorse(orgs, n, role)


def test_reading_back() -> None:
    assert read_key_endorsers(b"") is None
    assert read_key_endorsers(orgs_must_endorse(["X"])) == KeyEndorsers(1, ("X",), "peer")
    nested = policies_pb2.SignaturePolicyEnvelope(
        rule=policies_pb2.SignaturePolicy(
            n_out_of=policies_pb2.SignaturePolicy.NOutOf(
                n=1, rules=[policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=1))]
            )
        )
    )
    with pytest.raises(ValueError, match="nests"):
        read_key_endorsers(nested.SerializeToString())
