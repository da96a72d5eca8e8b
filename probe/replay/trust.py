"""Why a client refused a server's certificate, when it did not say.

A client that rejects the certificate normally says why in an alert
(``unknown_ca``, ``bad_certificate`` ...; ``probe.replay.observe`` reads
it). Some hang up without one: Python's asyncio TLS, under the probe's
HTTPS check, aborts a failed handshake without flushing its alert. The
capture then shows only that the client left after the server's
certificate; the reason is re-derived by verifying the certificates as
the client did, with the same trust anchors (the live run's
``--ca-bundle``, or the system store), for the server name it asked for,
at the moment of the handshake.

The checks go in OpenSSL's order (``X509_verify_cert`` in
crypto/x509/x509_vfy.c: build the chain to a trust anchor, check the
issuers are CAs, then the host name, then the validity times), so the
failure is the one the live check's ``verify_code`` gave
(``probe.net.errors``): no chain to an anchor ``ssl_unknown_authority``,
a name the certificate does not carry ``ssl_invalid_hostname``, anything
else ``ssl_invalid_certificate``. They are OpenSSL's demands, not the Web
PKI's (no required key identifiers or key usages), as OpenSSL is what
the live check used.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import warnings
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.utils import CryptographyDeprecationWarning

from probe.errors import InputError
from probe.model import Failure

__all__ = ["CertificateJudge", "names_server"]

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_MAX_DEPTH = 10  # certificates in a chain, anchor included
# cryptography parses lazily: a damaged field raises one of these when read.
_UNREADABLE = (ValueError, KeyError, TypeError)


class CertificateJudge:
    """Verifies presented chains against the CAs of a PEM file (``bundle``),
    or of the system's store (OpenSSL's default file, what a live run
    without ``--ca-bundle`` trusts), read when first needed."""

    def __init__(self, bundle: Path | str | None = None) -> None:
        self._bundle = Path(bundle) if bundle is not None else None

    @classmethod
    def from_bundle(cls, path: Path | str) -> CertificateJudge:
        """A judge of ``path``'s CAs; ValueError (one line) if it has none to read."""
        judge = cls(path)
        if not judge._anchors:
            raise InputError(f"--ca-bundle {path}: no readable PEM certificate in it")
        return judge

    @cached_property
    def _anchors(self) -> dict[x509.Name, list[x509.Certificate]]:
        """The trust anchors by subject."""
        if self._bundle is not None:
            files = [self._bundle]
        else:
            paths = ssl.get_default_verify_paths()
            files = [Path(name) for name in (paths.cafile, paths.openssl_cafile) if name]
        anchors: dict[x509.Name, list[x509.Certificate]] = defaultdict(list)
        for path in files:
            try:
                found = _certificates(path.read_bytes())
            except OSError:
                continue
            for certificate in found:
                anchors[certificate.subject].append(certificate)
            if found:
                break
        return anchors

    def failure(self, chain: Sequence[bytes], name: str, at: datetime) -> Failure | None:
        """What verifying ``chain`` (DER, leaf first) for ``name`` at ``at``
        fails with; None when it verifies."""
        try:
            return self._failure(chain, name, at)
        except _UNREADABLE:
            return Failure.SSL_INVALID_CERTIFICATE  # nothing a verifier could read

    def _failure(self, chain: Sequence[bytes], name: str, at: datetime) -> Failure | None:
        leaf, *rest = [x509.load_der_x509_certificate(der) for der in chain]
        path = self._path(leaf, rest)
        if path is None:
            return Failure.SSL_UNKNOWN_AUTHORITY
        if not all(_is_ca(issuer) for issuer in path[1:]):
            return Failure.SSL_INVALID_CERTIFICATE
        if not _names_match(leaf, name):
            return Failure.SSL_INVALID_HOSTNAME
        if not all(c.not_valid_before_utc <= at <= c.not_valid_after_utc for c in path):
            return Failure.SSL_INVALID_CERTIFICATE
        return None

    def _path(
        self, certificate: x509.Certificate, pool: list[x509.Certificate], depth: int = 1
    ) -> list[x509.Certificate] | None:
        """``certificate`` up to a trust anchor through ``pool`` (the other
        presented certificates), by names and signatures; None if none."""
        if certificate in self._anchors.get(certificate.subject, ()):
            return [certificate]  # trusted as it is (a pinned self-signed server)
        for anchor in self._anchors.get(certificate.issuer, ()):
            if _issued(certificate, anchor):
                return [certificate, anchor]
        if depth >= _MAX_DEPTH:
            return None
        for issuer in pool:
            if _issued(certificate, issuer):
                above = self._path(issuer, [c for c in pool if c is not issuer], depth + 1)
                if above is not None:
                    return [certificate, *above]
        return None


def names_server(der: bytes, name: str) -> bool:
    """Whether the certificate ``der`` is one for ``name`` (False if unreadable)."""
    try:
        return _names_match(x509.load_der_x509_certificate(der), name)
    except _UNREADABLE:
        return False


def _issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (*_UNREADABLE, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _names_match(leaf: x509.Certificate, name: str) -> bool:
    """OpenSSL's ``X509_check_host``/``X509_check_ip`` as Python's
    ``check_hostname`` calls them: subjectAltName, else (for a host name)
    the subject's common name; a wildcard only as the whole left-most label
    of a name with two more labels (RFC 6125 section 6.4.3)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if address is not None:
        return names is not None and address in names.get_values_for_type(x509.IPAddress)
    if names is not None:
        patterns = names.get_values_for_type(x509.DNSName)
    else:
        patterns = [str(a.value) for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    host = name.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if pattern == host:
            return True
        wild = pattern.startswith("*.") and pattern.count(".") >= 2
        if wild and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def _certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file that parses, one by one: a system
    store may hold one that cryptography now frowns upon (a serial of 0)."""
    found = []
    for block in _PEM.findall(pem):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                found.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            continue
    return found
