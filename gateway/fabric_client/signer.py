"""Signers: turn a message digest into a signature Fabric accepts.

A ``Signer`` is any callable ``digest -> signature``. The client hashes each message itself (SHA-256,
the hash Fabric's MSP uses) and hands over only the digest, so a hardware security module or a remote
signing service can stand in for ``ECDSASigner`` without ever exposing the key.

Fabric rejects ECDSA signatures whose S is above half the curve order ("Invalid S. Must be smaller than
half the order"), so every signer must fold S to the low half and DER-encode (r, s).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from .identity import find_private_key_file

__all__ = [
    "CURVE_ORDERS",
    "ECDSASigner",
    "Hash",
    "Signer",
    "sha256",
    "to_low_s",
]

# Group orders of the curves Fabric's MSP accepts.
CURVE_ORDERS: dict[str, int] = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
}

# Fabric's MSP hashes with SHA-256 whatever the curve; SHA-384 digests are accepted for MSPs set up for it.
_PREHASH_BY_SIZE: dict[int, hashes.HashAlgorithm] = {32: hashes.SHA256(), 48: hashes.SHA384()}


@runtime_checkable
class Signer(Protocol):
    """Signs a digest (already hashed); returns a DER-encoded low-S ECDSA signature."""

    def __call__(self, digest: bytes) -> bytes: ...


class Hash(Protocol):
    """Hashes a message for signing (``sha256`` unless the MSP says otherwise)."""

    def __call__(self, message: bytes) -> bytes: ...


def sha256(message: bytes) -> bytes:
    """The message hash Fabric signatures are computed over."""
    return hashlib.sha256(message).digest()


def to_low_s(signature: bytes, curve_order: int) -> bytes:
    """Re-encode a DER ECDSA signature with S folded into the lower half of the group order."""
    r, s = decode_dss_signature(signature)
    if s > curve_order // 2:
        s = curve_order - s
    return encode_dss_signature(r, s)


class ECDSASigner:
    """Signs digests with an in-process ECDSA private key (P-256 as cryptogen issues, or P-384)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise TypeError("ECDSASigner needs an elliptic-curve private key")
        curve = private_key.curve.name
        if curve not in CURVE_ORDERS:
            raise ValueError(f"unsupported curve {curve}; Fabric accepts {', '.join(CURVE_ORDERS)}")
        self._key = private_key
        self._order = CURVE_ORDERS[curve]

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> ECDSASigner:
        """Load a PEM private key (PKCS#8 or SEC1). Raises ``ValueError`` for a key that is not EC."""
        key = serialization.load_pem_private_key(pem, password=password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("private key is not an elliptic-curve key")
        return cls(key)

    @classmethod
    def from_key_file(cls, key_path: str | Path, password: bytes | None = None) -> ECDSASigner:
        """Load a PEM private key file. Raises ``OSError`` or ``ValueError``."""
        return cls.from_pem(Path(key_path).read_bytes(), password)

    @classmethod
    def from_msp_dir(cls, msp_dir: str | Path) -> ECDSASigner:
        """Load the key of an MSP folder (``keystore/priv_sk``)."""
        return cls.from_key_file(find_private_key_file(msp_dir))

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public key, to check a certificate matches this signer."""
        return self._key.public_key()

    def __call__(self, digest: bytes) -> bytes:
        prehash = _PREHASH_BY_SIZE.get(len(digest))
        if prehash is None:
            raise ValueError(
                f"digest must be a SHA-256 or SHA-384 digest (32 or 48 bytes), got {len(digest)} bytes"
            )
        signature = self._key.sign(digest, ec.ECDSA(Prehashed(prehash)))
        return to_low_s(signature, self._order)
