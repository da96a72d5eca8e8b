"""The lab's certificate authorities, made fresh for every lab.

Two CAs: the lab CA, which the probe inside the lab trusts (its
``--ca-bundle``), and an "interception" CA it does not trust, standing
for a censor's own CA in a TLS-intercepting middlebox. Each signs one
leaf naming every lab name, so one server configuration covers every
address and the probe's hostname check passes for every target.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from probe.files import write_private

__all__ = ["LabCerts", "make_lab_certs"]

_VALIDITY = datetime.timedelta(days=30)
# Clocks of the namespaces are the host's, but leave room for a skewed one.
_BACKDATE = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class LabCerts:
    """PEM files of one lab."""

    ca: Path  # what the probe trusts
    leaf: Path
    leaf_key: Path
    intercept_ca: Path  # the censor's CA, trusted by nobody
    intercept_leaf: Path
    intercept_key: Path


def make_lab_certs(directory: Path, names: Sequence[str]) -> LabCerts:
    """Write both CAs and their leaves for ``names`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    paths: dict[str, Path] = {}
    for stem, title in (("", "Probe Lab CA"), ("intercept-", "Lab Censor Interception CA")):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca(title, ca_key, now)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf_cert = _leaf(names, leaf_key, ca_cert, ca_key, now)
        paths[f"{stem}ca"] = _write(directory / f"{stem}ca.pem", _pem(ca_cert))
        paths[f"{stem}leaf"] = _write(directory / f"{stem}leaf.pem", _pem(leaf_cert))
        paths[f"{stem}key"] = directory / f"{stem}leaf.key"
        write_private(
            paths[f"{stem}key"],
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    return LabCerts(
        ca=paths["ca"],
        leaf=paths["leaf"],
        leaf_key=paths["key"],
        intercept_ca=paths["intercept-ca"],
        intercept_leaf=paths["intercept-leaf"],
        intercept_key=paths["intercept-key"],
    )


def _ca(title: str, key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, title)])
    builder = (
        _base(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _leaf(
    names: Sequence[str],
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab servers")])
    builder = (
        _base(subject, ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # RFC 6125 section 6.4.4: clients check subjectAltName, never the CN.
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sorted(set(names))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def _base(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o644)
    return path
