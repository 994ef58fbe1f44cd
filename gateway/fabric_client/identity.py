"""Client identity: an MSP id and an X.509 certificate, serialised as the transaction creator.

The identity holds no private key; signing is the job of a ``Signer`` (see ``signer.py``), so a key kept in
an HSM or a remote service can sign for an identity loaded from a certificate file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from fabric_protos.msp import identities_pb2

__all__ = ["Identity", "find_private_key_file"]


@dataclass(frozen=True)
class Identity:
    """An enrolled client: the MSP it belongs to and its PEM certificate."""

    msp_id: str
    certificate: bytes

    def __post_init__(self) -> None:
        if not self.msp_id:
            raise ValueError("identity needs an MSP id")
        try:
            x509.load_pem_x509_certificate(self.certificate)
        except ValueError as error:
            raise ValueError(
                f"identity certificate for {self.msp_id} is not a PEM X.509 certificate"
            ) from error

    @classmethod
    def from_cert_file(cls, msp_id: str, cert_path: str | Path) -> Identity:
        """Load the identity from a PEM certificate file."""
        return cls(msp_id, Path(cert_path).read_bytes())

    @classmethod
    def from_msp_dir(cls, msp_id: str, msp_dir: str | Path) -> Identity:
        """Load the identity from an MSP folder as cryptogen or fabric-ca write it (``signcerts/*.pem``)."""
        signcerts = Path(msp_dir) / "signcerts"
        certs = sorted(signcerts.glob("*.pem"))
        if len(certs) != 1:
            raise ValueError(f"expected exactly one certificate in {signcerts}, found {len(certs)}")
        return cls.from_cert_file(msp_id, certs[0])

    @property
    def x509_certificate(self) -> x509.Certificate:
        """The certificate, parsed."""
        return x509.load_pem_x509_certificate(self.certificate)

    def creator(self) -> bytes:
        """Serialised ``msp.SerializedIdentity``: the creator field of every header this client signs."""
        return bytes(
            identities_pb2.SerializedIdentity(
                mspid=self.msp_id, id_bytes=self.certificate
            ).SerializeToString()
        )


def find_private_key_file(msp_dir: str | Path) -> Path:
    """The private key of an MSP folder: ``keystore/priv_sk`` (cryptogen) or the single ``*_sk`` file
    fabric-ca writes."""
    keystore = Path(msp_dir) / "keystore"
    named = keystore / "priv_sk"
    if named.is_file():
        return named
    keys = sorted(p for p in keystore.iterdir() if p.is_file()) if keystore.is_dir() else []
    if len(keys) != 1:
        raise ValueError(f"expected one private key in {keystore}, found {len(keys)}")
    return keys[0]
