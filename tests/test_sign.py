from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import archive_samples as samples
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from probe import model
from probe.report import write_report_atomic
from probe.sign import (
    canonical_bytes,
    key_id_for,
    public_key_bytes,
    sign_report,
    verify_file,
    verify_report,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def signed(report: dict[str, Any] | None = None, key: Ed25519PrivateKey = KEY) -> dict[str, Any]:
    return sign_report(report if report is not None else samples.build(), key)


def small_report() -> dict[str, Any]:
    """One feature, one target, one observation: small enough to try every byte."""
    testlist = model.TestList(
        name="tiny",
        version="1",
        description="",
        updated="2026-11-01",
        features=(model.Feature("chat", "Chat", "", (samples.CHAT,)),),
        controls=(),
        sha256="0f" * 32,
        path="tiny.yaml",
    )
    return samples.build(
        testlist=testlist,
        results=(samples.result(samples.CHAT, "chat", observations=(samples.TIMEOUT_OBS,)),),
        controls=(),
        features={"chat": samples.FEATURES["messaging"]},
        config={"resolver": "system", "max_time": 1.5},
    )


# --------------------------------------------------------------------------
# Canonical bytes and the signature member


def test_canonical_bytes_are_rfc8785_without_the_signature() -> None:
    report = {"b": 1, "a": [1.0, "é"], "signature": {"value": "x"}}
    assert canonical_bytes(report) == '{"a":[1,"é"],"b":1}'.encode()


def test_signature_member() -> None:
    report = signed()
    signature = report["signature"]
    public = public_key_bytes(KEY)
    assert list(report)[-1] == "signature"
    assert signature["alg"] == "Ed25519"
    assert signature["canonicalization"] == "RFC8785"
    assert signature["public_key"] == base64.b64encode(public).decode()
    assert signature["key_id"] == hashlib.sha256(public).hexdigest()[:16] == key_id_for(public)
    assert len(base64.b64decode(signature["value"])) == 64


def test_report_never_holds_the_private_key() -> None:
    text = json.dumps(signed())
    private_raw = KEY.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert base64.b64encode(private_raw).decode() not in text
    assert private_raw.hex() not in text
    assert "PRIVATE" not in text


def test_signing_does_not_change_the_input_and_resigning_replaces() -> None:
    report = samples.build()
    before = copy.deepcopy(report)
    first = sign_report(report, KEY)
    assert report == before
    second = sign_report(first, OTHER_KEY)
    assert second["signature"]["key_id"] == key_id_for(public_key_bytes(OTHER_KEY))
    assert verify_report(second).valid


# --------------------------------------------------------------------------
# verify_report


def test_round_trip_is_valid() -> None:
    result = verify_report(signed())
    assert result.valid and result.reason == "signature valid"
    assert result.key_id == key_id_for(public_key_bytes(KEY))


def test_round_trip_through_json_text() -> None:
    assert verify_report(json.loads(json.dumps(signed()))).valid


def test_any_changed_value_is_invalid() -> None:
    report = signed()
    report["targets"][2]["verdict"] = "reachable"
    result = verify_report(report)
    assert not result.valid and result.reason == "signature does not match the report"
    assert result.key_id == key_id_for(public_key_bytes(KEY))


def test_added_member_is_invalid() -> None:
    report = signed() | {"note": "added after signing"}
    assert verify_report(report).reason == "signature does not match the report"


def swapped_public_key(signature: dict[str, Any]) -> None:
    public = public_key_bytes(OTHER_KEY)
    signature["public_key"] = base64.b64encode(public).decode()
    signature["key_id"] = key_id_for(public)


def non_canonical_base64(signature: dict[str, Any]) -> None:
    # The character before "==" carries 4 unused bits: set one. Decoders
    # that ignore them would see the same signature bytes.
    value = signature["value"]
    last = BASE64_ALPHABET[BASE64_ALPHABET.index(value[-3]) ^ 1]
    signature["value"] = value[:-3] + last + "=="
    assert base64.b64decode(signature["value"]) == base64.b64decode(value)


def flipped_signature_bit(signature: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(signature["value"]))
    raw[10] ^= 1
    signature["value"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: s.pop("value"), "signature has no 'value'"),
        (lambda s: s.pop("alg"), "signature has no 'alg'"),
        (lambda s: s.update(alg="RS256"), "unsupported signature algorithm 'RS256'"),
        (lambda s: s.update(alg=["Ed25519"]), "unsupported signature algorithm ['Ed25519']"),
        (lambda s: s.update(canonicalization="JCS-ish"), "unsupported canonicalization 'JCS-ish'"),
        (lambda s: s.update(value="not base64!"), "signature value is not the base64 of 64 bytes"),
        (lambda s: s.update(value="QUJD"), "signature value is not the base64 of 64 bytes"),
        (lambda s: s.update(value=12), "signature value is not the base64 of 64 bytes"),
        (lambda s: s.update(value="é" * 88), "signature value is not the base64 of 64 bytes"),
        (non_canonical_base64, "signature value is not the base64 of 64 bytes"),
        (flipped_signature_bit, "signature does not match the report"),
        (lambda s: s.update(public_key="AAAA"), "public_key is not the base64 of 32 bytes"),
        (lambda s: s.update(public_key=None), "public_key is not the base64 of 32 bytes"),
        (lambda s: s.update(key_id="0123456789abcdef"), "key_id does not match public_key"),
        (lambda s: s.update(key_id="0123456789ABCDEF"), "key_id is not 16 lowercase hex digits"),
        (lambda s: s.update(key_id=7), "key_id is not 16 lowercase hex digits"),
        (swapped_public_key, "signature does not match the report"),
        (lambda s: s.update(comment="trust me"), "unexpected member in signature: 'comment'"),
    ],
)
def test_tampered_signature_member_is_invalid(tamper: Any, reason: str) -> None:
    report = signed()
    tamper(report["signature"])
    result = verify_report(report)
    assert not result.valid
    assert result.reason == reason


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (samples.build(), "report is not signed"),
        (samples.build() | {"signature": "abc"}, "signature member is not an object"),
        (samples.build() | {"signature": None}, "report is not signed"),
        ([1, 2], "a report is a JSON object"),
        ("text", "a report is a JSON object"),
    ],
)
def test_unsigned_or_malformed_reports_are_invalid(report: Any, reason: str) -> None:
    result = verify_report(report)
    assert (result.valid, result.key_id, result.reason) == (False, None, reason)


def test_report_that_cannot_be_canonicalized_is_invalid() -> None:
    report = signed()
    report["config"]["huge"] = 2**60  # beyond the I-JSON integer range
    result = verify_report(report)
    assert not result.valid and result.reason.startswith("report cannot be canonicalized: ")


def test_pinning_a_key() -> None:
    report = signed()
    key_id = report["signature"]["key_id"]
    assert verify_report(report, expected_key_id=key_id).valid
    assert verify_report(report, expected_key_id=key_id.upper()).valid
    assert verify_report(report, expected_public_key=report["signature"]["public_key"]).valid
    other = key_id_for(public_key_bytes(OTHER_KEY))
    wrong_id = verify_report(report, expected_key_id=other)
    assert not wrong_id.valid and wrong_id.reason == f"signed by key {key_id}, expected {other}"
    other_public = base64.b64encode(public_key_bytes(OTHER_KEY)).decode()
    assert not verify_report(report, expected_public_key=other_public).valid


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=90),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)
SIGNED = signed()


@settings(max_examples=300)
@given(st.sampled_from(sorted(SIGNED["signature"])), json_values)
def test_hostile_signature_members_never_raise(member: str, value: Any) -> None:
    report = copy.deepcopy(SIGNED)
    report["signature"][member] = value
    result = verify_report(report)
    assert result.valid == (value == SIGNED["signature"][member])


@given(json_values)
def test_hostile_signature_objects_never_raise(value: Any) -> None:
    assert not verify_report(samples.build() | {"signature": value}).valid


# --------------------------------------------------------------------------
# verify_file: every byte counts


def write_signed(tmp_path: Path, report: dict[str, Any]) -> Path:
    return write_report_atomic(sign_report(report, KEY), tmp_path, "report")


def test_file_round_trip(tmp_path: Path) -> None:
    path = write_signed(tmp_path, samples.build())
    result = verify_file(path, expected_key_id=key_id_for(public_key_bytes(KEY)))
    assert result.valid and result.reason == "signature valid"


def test_whitespace_change_is_caught_by_the_canonical_form_check(tmp_path: Path) -> None:
    path = write_signed(tmp_path, samples.build())
    data = path.read_bytes()
    changed = data.replace(b'\n  "software"', b'\n \t"software"', 1)
    assert changed != data and json.loads(changed) == json.loads(data)  # same value...
    path.write_bytes(changed)
    result = verify_file(path)  # ...but not the same file
    assert not result.valid and result.reason == "file is not in canonical form"


def test_signed_value_in_another_layout_is_not_canonical(tmp_path: Path) -> None:
    path = tmp_path / "compact.json"
    path.write_text(json.dumps(signed()))
    assert verify_report(json.loads(path.read_text())).valid
    assert verify_file(path).reason == "file is not in canonical form"


def substitutes(byte: int) -> set[int]:
    """Different bytes to try in place of ``byte``: bit flips (case, UTF-8
    validity, base64 neighbours), and the whitespace JSON forgives."""
    flips = {byte ^ 0x01, byte ^ 0x02, byte ^ 0x20, byte ^ 0x80}
    neighbours = {(byte + 1) % 256, (byte - 1) % 256}
    return (flips | neighbours | {0x09, 0x20, 0x0A}) - {byte}


def assert_invalid_after_change(path: Path, data: bytes, position: int, byte: int) -> None:
    changed = bytearray(data)
    changed[position] = byte
    path.write_bytes(changed)
    result = verify_file(path)
    assert not result.valid, (position, bytes([data[position]]), bytes([byte]), data[max(0, position - 30) : position + 30])


def test_every_byte_of_a_small_report_matters(tmp_path: Path) -> None:
    path = write_signed(tmp_path, small_report())
    data = path.read_bytes()
    assert verify_file(path).valid
    assert len(data) < 4000  # keep this exhaustive test fast
    for position, byte in enumerate(data):
        for substitute in sorted(substitutes(byte)):
            assert_invalid_after_change(path, data, position, substitute)


def test_sampled_bytes_of_a_real_sized_report_matter(tmp_path: Path) -> None:
    path = write_signed(tmp_path, samples.build_large(6, 5))
    data = path.read_bytes()
    assert verify_file(path).valid
    assert len(data) > 50_000
    chooser = random.Random(20261123)
    positions = chooser.sample(range(len(data)), 250)
    # The signature member is at the end: always try all of it.
    positions += range(data.rindex(b'"signature"'), len(data))
    for position in positions:
        substitute = chooser.choice(sorted(substitutes(data[position])))
        assert_invalid_after_change(path, data, position, substitute)


def test_every_base64_character_of_the_signature_matters(tmp_path: Path) -> None:
    # Base64 has spare bits in its last character (RFC 4648 section 3.5):
    # lenient decoders map several strings to the same bytes. Try every
    # alphabet character at every position of both base64 members.
    path = write_signed(tmp_path, small_report())
    data = path.read_bytes()
    signature = json.loads(data)["signature"]
    for member in ("public_key", "value"):
        start = data.index(signature[member].encode())
        for position in range(start, start + len(signature[member].rstrip("="))):
            for substitute in BASE64_ALPHABET.replace(chr(data[position]), ""):
                assert_invalid_after_change(path, data, position, ord(substitute))


def test_truncated_or_extended_file_is_invalid(tmp_path: Path) -> None:
    path = write_signed(tmp_path, small_report())
    data = path.read_bytes()
    for changed in (data[:-1], data + b"\n", data + b" ", b" " + data, data[:-2] + b"}"):
        path.write_bytes(changed)
        assert not verify_file(path).valid


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"a": 1,}', r"^r\.json:1:9: Expecting property name enclosed in double quotes$"),
        (b"\xff\xfe{}", r"^r\.json: not UTF-8 \(byte 0\)$"),
        (b"[]", r"^r\.json: a report is a JSON object, not list$"),
        (b"{}\n", r"^report is not signed$"),
    ],
)
def test_unreadable_files_are_invalid_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    result = verify_file(path)
    assert not result.valid
    assert re.match(reason, result.reason), result.reason


def test_missing_file_is_invalid(tmp_path: Path) -> None:
    result = verify_file(tmp_path / "absent.json")
    assert not result.valid and result.reason.startswith("cannot read ")
    assert result.reason.endswith("absent.json: No such file or directory")
