"""DER certificates in, ``probe.model.Certificate`` facts out."""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509

from probe.model import Certificate

# What cryptography raises on malformed certificates or extensions.
# KeyError: cryptography raises it for some damaged extensions (found by fuzzing replay).
_UNPARSABLE = (
    ValueError,
    KeyError,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def certificate_from_der(der: bytes) -> Certificate:
    """Facts of one presented certificate.

    A certificate that cryptography refuses to parse is still recorded by
    its fingerprint: an interception box's broken certificate is evidence
    too.
    """
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        return Certificate(
            sha256=fingerprint,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            not_before=_rfc3339(cert.not_valid_before_utc),
            not_after=_rfc3339(cert.not_valid_after_utc),
            names=_dns_names(cert),
        )
    except _UNPARSABLE:
        return Certificate(fingerprint, "", "", "", "", ())


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.value.get_values_for_type(x509.DNSName))


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
