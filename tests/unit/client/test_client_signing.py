from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from client_test_keys import Credentials
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_client.identity import Identity
from fabric_client.signer import CURVE_ORDERS, ECDSASigner, Signer, sha256, to_low_s
from fabric_protos.msp import identities_pb2

P256_ORDER = CURVE_ORDERS["secp256r1"]


def test_signature_is_der_low_s_and_verifies(credentials: Credentials) -> None:
    signer = ECDSASigner.from_pem(credentials.key_pem)
    public_key = credentials.key.public_key()
    for i in range(64):  # about half of raw ECDSA signatures have a high S; 64 tries all but surely hit one
        message = f"proposal {i}".encode()
        signature = signer(sha256(message))
        r, s = decode_dss_signature(signature)  # raises unless DER
        assert encode_dss_signature(r, s) == signature
        assert 0 < s <= P256_ORDER // 2
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_high_s_is_folded_and_still_verifies(credentials: Credentials) -> None:
    message = b"envelope payload"
    raw = credentials.key.sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(raw)
    high = encode_dss_signature(r, s if s > P256_ORDER // 2 else P256_ORDER - s)
    assert decode_dss_signature(high)[1] > P256_ORDER // 2

    folded = to_low_s(high, P256_ORDER)

    assert decode_dss_signature(folded) == (r, min(s, P256_ORDER - s))
    credentials.key.public_key().verify(high, message, ec.ECDSA(hashes.SHA256()))
    credentials.key.public_key().verify(folded, message, ec.ECDSA(hashes.SHA256()))


def test_signature_over_other_message_fails(credentials: Credentials) -> None:
    signer = ECDSASigner.from_pem(credentials.key_pem)
    signature = signer(sha256(b"one"))
    with pytest.raises(InvalidSignature):
        credentials.key.public_key().verify(signature, b"two", ec.ECDSA(hashes.SHA256()))


def test_digest_of_wrong_size_is_refused(credentials: Credentials) -> None:
    signer = ECDSASigner.from_pem(credentials.key_pem)
    with pytest.raises(ValueError, match="32 or 48 bytes"):
        signer(b"not a digest")


def test_p384_key_signs_low_s() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    signer = ECDSASigner(key)
    order = CURVE_ORDERS["secp384r1"]
    for i in range(16):
        message = f"m{i}".encode()
        signature = signer(hashlib.sha256(message).digest())
        assert decode_dss_signature(signature)[1] <= order // 2
        key.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_unsupported_curve_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported curve"):
        ECDSASigner(ec.generate_private_key(ec.SECP256K1()))


def test_signer_protocol_accepts_plain_callables(credentials: Credentials) -> None:
    def remote_signer(digest: bytes) -> bytes:  # stands in for an HSM or signing service
        return ECDSASigner.from_pem(credentials.key_pem)(digest)

    assert isinstance(remote_signer, Signer)
    assert isinstance(ECDSASigner.from_pem(credentials.key_pem), Signer)


def test_identity_and_signer_from_msp_dir(msp_dir: Path, credentials: Credentials) -> None:
    identity = Identity.from_msp_dir("USBankMSP", msp_dir)
    signer = ECDSASigner.from_msp_dir(msp_dir)

    assert identity.certificate == credentials.cert_pem
    assert signer.public_key.public_numbers() == credentials.key.public_key().public_numbers()
    creator = identities_pb2.SerializedIdentity.FromString(identity.creator())
    assert creator.mspid == "USBankMSP"
    assert creator.id_bytes == credentials.cert_pem


def test_identity_from_cert_file(tmp_path: Path, credentials: Credentials) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(credentials.cert_pem)
    assert Identity.from_cert_file("HKBankMSP", cert) == Identity("HKBankMSP", credentials.cert_pem)


def test_fabric_ca_keystore_name_is_found(msp_dir: Path, credentials: Credentials) -> None:
    (msp_dir / "keystore" / "priv_sk").rename(msp_dir / "keystore" / "4f2a_sk")
    signer = ECDSASigner.from_msp_dir(msp_dir)
    assert signer.public_key.public_numbers() == credentials.key.public_key().public_numbers()


def test_msp_dir_with_two_certs_is_refused(msp_dir: Path, credentials: Credentials) -> None:
    (msp_dir / "signcerts" / "other.pem").write_bytes(credentials.cert_pem)
    with pytest.raises(ValueError, match="exactly one certificate"):
        Identity.from_msp_dir("USBankMSP", msp_dir)


def test_identity_rejects_garbage_certificate() -> None:
    with pytest.raises(ValueError, match="not a PEM X"):
        Identity("USBankMSP", b"-----BEGIN NOTHING-----")
    with pytest.raises(ValueError, match="MSP id"):
        Identity("", b"")


def test_client_package_does_not_import_flask() -> None:
    import subprocess
    import sys

    probe = "import sys, fabric_client, fabric_client.profile; print('flask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
