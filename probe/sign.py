"""Report signatures: canonical bytes, Ed25519 sign, verify.

What is signed is exactly ``canonical_bytes(report)``: the RFC 8785 (JSON
Canonicalization Scheme) serialization of the report without its
``signature`` member. The signature member says how to check it:

    {"alg": "Ed25519", "canonicalization": "RFC8785",
     "key_id": "<16 hex>", "public_key": "<base64>", "value": "<base64>"}

``key_id`` is the first 16 hex digits of SHA-256 over the raw 32-byte
public key (RFC 8032 section 5.1.5 encoding), a short name for analysts to
pin a signer. Verification treats the report as hostile: it never raises,
and every defect becomes an invalid result with a reason.

The signature proves who signed which JSON value; ``verify_file`` also
proves the file is byte for byte what the writer produced, because JSON
parsing forgives whitespace and the signed value alone would not notice a
changed indentation byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from probe.report import ReportError, encode_report, parse_report_bytes

SigningKey = Ed25519PrivateKey

ALG = "Ed25519"
CANONICALIZATION = "RFC8785"
_SIGNATURE_MEMBERS = frozenset({"alg", "canonicalization", "key_id", "public_key", "value"})
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_PUBLIC_KEY_SIZE = 32  # RFC 8032 section 5.1.5
_SIGNATURE_SIZE = 64  # RFC 8032 section 5.1.6


@dataclass(frozen=True, slots=True)
class VerifyResult:
    valid: bool
    key_id: str | None  # the claimed signer, when the signature member names one
    reason: str


def canonical_bytes(report: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of the report without ``signature``: what gets signed.

    Raises ``rfc8785.CanonicalizationError`` (a ValueError) for values JSON
    cannot carry exactly (NaN, integers beyond 2**53, lone surrogates).
    """
    return rfc8785.dumps({k: v for k, v in report.items() if k != "signature"})


def public_key_bytes(key: SigningKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_for(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def sign_report(report: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``report`` with a fresh ``signature`` member (last)."""
    public = public_key_bytes(key)
    unsigned = {k: v for k, v in report.items() if k != "signature"}
    return unsigned | {
        "signature": {
            "alg": ALG,
            "canonicalization": CANONICALIZATION,
            "key_id": key_id_for(public),
            "public_key": base64.b64encode(public).decode("ascii"),
            "value": base64.b64encode(key.sign(canonical_bytes(unsigned))).decode("ascii"),
        }
    }


def verify_report(
    report: Any,
    expected_key_id: str | None = None,
    expected_public_key: str | None = None,
) -> VerifyResult:
    """Check the report's signature; optionally pin the signer.

    Without a pin this proves integrity (nobody changed the report since
    the holder of that key signed it), not identity: anyone can sign with
    a key of their own. Pin a key id or public key to prove who.
    """
    if not isinstance(report, Mapping):
        return VerifyResult(False, None, "a report is a JSON object")
    signature = report.get("signature")
    if signature is None:
        return VerifyResult(False, None, "report is not signed")
    if not isinstance(signature, Mapping):
        return VerifyResult(False, None, "signature member is not an object")
    claimed = signature.get("key_id")
    key_id = claimed if isinstance(claimed, str) and _KEY_ID.fullmatch(claimed) else None

    def invalid(reason: str) -> VerifyResult:
        return VerifyResult(False, key_id, reason)

    extra = sorted(set(signature) - _SIGNATURE_MEMBERS, key=str)
    if extra:
        # The signature member is not itself signed: refuse to carry anything
        # unchecked in it.
        return invalid(f"unexpected member in signature: {_short(extra[0])}")
    missing = sorted(_SIGNATURE_MEMBERS - set(signature))
    if missing:
        return invalid(f"signature has no {missing[0]!r}")
    if signature["alg"] != ALG:
        return invalid(f"unsupported signature algorithm {_short(signature['alg'])}")
    if signature["canonicalization"] != CANONICALIZATION:
        return invalid(f"unsupported canonicalization {_short(signature['canonicalization'])}")
    if key_id is None:
        return invalid("key_id is not 16 lowercase hex digits")
    public = _strict_b64(signature["public_key"], _PUBLIC_KEY_SIZE)
    if public is None:
        return invalid(f"public_key is not the base64 of {_PUBLIC_KEY_SIZE} bytes")
    if key_id_for(public) != key_id:
        return invalid("key_id does not match public_key")
    if expected_key_id is not None and key_id != expected_key_id.lower():
        return invalid(f"signed by key {key_id}, expected {expected_key_id}")
    if expected_public_key is not None and signature["public_key"] != expected_public_key:
        return invalid(f"signed by public key {signature['public_key']}, expected {expected_public_key}")
    value = _strict_b64(signature["value"], _SIGNATURE_SIZE)
    if value is None:
        return invalid(f"signature value is not the base64 of {_SIGNATURE_SIZE} bytes")
    try:
        message = canonical_bytes(report)
    except (ValueError, RecursionError) as exc:
        return invalid(f"report cannot be canonicalized: {exc}")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(value, message)
    except InvalidSignature:  # also what an off-curve public key gives
        return invalid("signature does not match the report")
    return VerifyResult(True, key_id, "signature valid")


def verify_file(
    path: Path | str,
    expected_key_id: str | None = None,
    expected_public_key: str | None = None,
) -> VerifyResult:
    """Verify a report file: its signature, and that its bytes are canonical.

    Any change to any byte of a file written by ``write_report_atomic``
    makes it invalid: either the parsed value changes (the signature fails)
    or only the layout does (the bytes are no longer ``encode_report`` of
    the value).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return VerifyResult(False, None, f"cannot read {path}: {exc.strerror or exc}")
    try:
        report = parse_report_bytes(data, path.name)
    except ReportError as exc:
        return VerifyResult(False, None, str(exc))
    result = verify_report(report, expected_key_id, expected_public_key)
    if not result.valid:
        return result
    if encode_report(report) != data:
        return VerifyResult(False, result.key_id, "file is not in canonical form")
    return result


def _strict_b64(text: Any, size: int) -> bytes | None:
    """Decode RFC 4648 base64 of exactly ``size`` bytes, or None.

    Only the canonical encoding is accepted (RFC 4648 section 3.5): the
    unused bits of the last character must be zero, otherwise several
    strings would decode to the same bytes and a changed character in a
    signed file would go unnoticed.
    """
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    if len(raw) != size or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
