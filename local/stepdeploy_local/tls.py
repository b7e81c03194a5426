"""TLS in the local world: a certificate authority the world creates at start, and what its HTTPS listeners serve.

The world's CA plays the public CA that signs Amazon-issued ACM certificates: an HTTPS listener whose
certificate ACM issued serves a certificate the CA signs for that certificate's names; an imported one
serves as imported. Clients trust the CA only through standard configuration: ``SSL_CERT_FILE`` naming
:attr:`CertificateAuthority.bundle` (the CAs trusted before, plus the world's), as a team that uses a
private CA configures its tools. Certificates carry wall-clock validity: TLS clients check it against the
machine's clock, not the world's virtual one.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import shutil
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = _dt.datetime.now(_dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=VALID_DAYS))
    )


class CertificateAuthority:
    """A root CA (EC P-256) made when the world starts; its PEM files live in a directory of their own."""

    def __init__(self, common_name: str = "stepdeploy local world CA") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="stepdeploy-world-tls-"))
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(common_name)
        self.certificate = (
            _builder(subject, subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.bundle = self.directory / "ca-bundle.pem"
        self.bundle.write_bytes(_trusted_before() + self.pem)

    def issue(self, names: list[str]) -> tuple[bytes, bytes]:
        """A server certificate for ``names`` (the first is its common name): (certificate PEM, key PEM)."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_key_id = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        certificate = (
            _builder(_name(names[0]), self.certificate.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def server_context(self, certificate_chain: bytes, key: bytes) -> ssl.SSLContext:
        """What an HTTPS listener with policy ELBSecurityPolicy-TLS13-1-2-2021-06 serves: TLS 1.2 and 1.3."""
        handle, path = tempfile.mkstemp(suffix=".pem", dir=self.directory)
        with os.fdopen(handle, "wb") as pem:
            pem.write(certificate_chain.strip() + b"\n" + key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(path)
        return context


def _trusted_before() -> bytes:
    """The CAs this process trusted before the world (SSL_CERT_FILE, else OpenSSL's default file), if any."""
    path = os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile
    if path and Path(path).is_file():
        return Path(path).read_bytes().rstrip() + b"\n"
    return b""


def remove(authority: CertificateAuthority) -> None:
    """Delete the CA's files (the world closes)."""
    shutil.rmtree(authority.directory, ignore_errors=True)
