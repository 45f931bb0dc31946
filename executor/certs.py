"""The job gateway's TLS certificate (DESIGN.md §5): self-signed, short-lived, pinned by fingerprint.

The client never trusts it through a CA: the miner signs the certificate's sha256 in the job's
readiness (:class:`protocol.streaming.Readiness`) and the client trusts exactly that certificate.
The key is ECDSA P-256, which every OpenSSL build accepts as a TLS server key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.streaming import cert_fingerprint

__all__ = ["Certificate", "make_certificate", "server_context"]

_UNSPECIFIED = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class Certificate:
    """A certificate and its private key, PEM; ``fingerprint`` is the sha256 of the DER."""

    cert_pem: str
    key_pem: str = ""
    der: bytes = b""

    @property
    def fingerprint(self) -> str:
        return cert_fingerprint(self.der)

    def __repr__(self) -> str:  # never show the key
        return f"<Certificate {self.fingerprint[:16]}…>"


def _san_entries(names: list[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in names:
        name = name.strip().strip("[]")
        if name in _UNSPECIFIED or name in seen:
            continue
        seen.add(name)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def make_certificate(
    address: str,
    *,
    lifetime: dt.timedelta = dt.timedelta(days=7),
    backdate: dt.timedelta = dt.timedelta(minutes=5),
    now: dt.datetime | None = None,
) -> Certificate:
    """A fresh self-signed P-256 certificate for ``address`` (an IP or a DNS name) and loopback.

    Valid from ``now - backdate`` (clock skew) to ``now + lifetime``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    current = now or dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridmarket job gateway")])
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(current - backdate)
        .not_valid_after(current + lifetime)
        .add_extension(
            x509.SubjectAlternativeName(_san_entries([address, "localhost", "127.0.0.1", "::1"])), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        der=cert.public_bytes(serialization.Encoding.DER),
    )


def server_context(certificate: Certificate) -> ssl.SSLContext:
    """A TLS (1.2+) server context serving ``certificate``.

    ``ssl`` only loads keys from files, so the PEMs pass through a private temporary directory
    that is removed before this returns.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="grid-cert-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_text(certificate.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(certificate.key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context
