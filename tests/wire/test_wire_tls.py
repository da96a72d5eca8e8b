"""probe.wire.tls: hellos, certificates and alerts, whole or in pieces."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.tls import (
    HandshakeReader,
    RecordReader,
    cipher_name,
    parse_alert,
    parse_certificate,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
    version_name,
)


def vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!H", kind) + vec(data, 2)


def hello_body(extensions: bytes, random: bytes = b"\x01" * 32) -> bytes:
    return (b"\x03\x03" + random + vec(b"\xaa" * 32, 1) + vec(b"\x13\x01\xc0\x2f", 2)
            + vec(b"\x00", 1) + vec(extensions, 2))


SNI = extension(0, vec(b"\x00" + vec(b"chat.example", 2), 2))
ALPN = extension(16, vec(vec(b"h2", 1) + vec(b"http/1.1", 1), 2))
VERSIONS = extension(43, vec(b"\x0a\x0a\x03\x04\x03\x03", 1))  # GREASE first


def records(payload: bytes, size: int, content_type: int = 22) -> bytes:
    return b"".join(
        struct.pack("!BHH", content_type, 0x0301, len(payload[i : i + size])) + payload[i : i + size]
        for i in range(0, len(payload), size)
    )


def test_client_hello_fields() -> None:
    hello = parse_client_hello(hello_body(SNI + ALPN + VERSIONS))
    assert hello.sni == "chat.example"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.supported_versions == (0x0304, 0x0303)  # GREASE left out
    assert hello.cipher_suites == (0x1301, 0xC02F)
    assert hello.extensions == (0, 16, 43)


@pytest.mark.parametrize("record_size", [1, 7, 50, 16384])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_client_hello_spanning_records_and_segments(record_size: int, chunk: int) -> None:
    message = b"\x01" + len(body := hello_body(SNI + ALPN + b"\x00\x15" + vec(b"\x00" * 600, 2))
                             ).to_bytes(3, "big") + body
    stream = records(message, record_size)
    reader, handshakes, found = RecordReader(), HandshakeReader(), []
    for i in range(0, len(stream), chunk):
        for record in reader.feed(stream[i : i + chunk]):
            found += handshakes.feed(record.fragment)
    assert [m.msg_type for m in found] == [1]
    assert parse_client_hello(found[0].body).sni == "chat.example"
    assert reader.pending == 0 and handshakes.pending == 0


def test_server_hello_version_from_supported_versions() -> None:
    body = b"\x03\x03" + b"\x02" * 32 + vec(b"", 1) + b"\x13\x02\x00" + vec(
        extension(43, b"\x03\x04"), 2)
    hello = parse_server_hello(body)
    assert (hello.version_name, hello.cipher_name, hello.hello_retry) == (
        "TLSv1.3", "TLS_AES_256_GCM_SHA384", False)


def test_server_hello_tls12_without_extensions_and_alpn() -> None:
    plain = b"\x03\x03" + b"\x02" * 32 + vec(b"", 1) + b"\xc0\x2f\x00"
    assert parse_server_hello(plain).version_name == "TLSv1.2"
    assert parse_server_hello(plain).cipher_name == "ECDHE-RSA-AES128-GCM-SHA256"
    with_alpn = plain + vec(extension(16, vec(vec(b"h2", 1), 2)), 2)
    assert parse_server_hello(with_alpn).alpn == "h2"


def test_hello_retry_request_is_recognised() -> None:
    random = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
    body = b"\x03\x03" + random + vec(b"", 1) + b"\x13\x01\x00" + vec(extension(43, b"\x03\x04"), 2)
    assert parse_server_hello(body).hello_retry


def test_certificates_tls12_and_tls13() -> None:
    ders = [b"\x30\x03abc", b"\x30\x02de"]
    tls12 = vec(b"".join(vec(d, 3) for d in ders), 3)
    tls13 = vec(b"", 1) + vec(b"".join(vec(d, 3) + vec(b"", 2) for d in ders), 3)
    assert parse_certificate(tls12, tls13=False) == tuple(ders)
    assert parse_certificate(tls13, tls13=True) == tuple(ders)


def test_encrypted_extensions_alpn_and_alerts() -> None:
    assert parse_encrypted_extensions(vec(extension(16, vec(vec(b"h2", 1), 2)), 2)) == "h2"
    alert = parse_alert(b"\x02\x30")
    assert (alert.fatal, alert.name) == (True, "unknown_ca")
    assert parse_alert(b"\x01\x00").name == "close_notify"
    assert version_name(0x0303) == "TLSv1.2" and cipher_name(0x1234) == "0x1234"


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n",  # not TLS at all
    b"\x16\x03\x01\xff\xff",  # a record far too long
    b"\x16\x05\x01\x00\x01",  # major version 5
])
def test_record_reader_refuses_what_is_not_tls(data: bytes) -> None:
    with pytest.raises(WireError):
        RecordReader().feed(data)


@pytest.mark.parametrize("body", [
    b"", b"\x03\x03", hello_body(SNI + SNI), hello_body(extension(0, b"\x00\x05\x00\x00\x02\xff\xfe")),
    hello_body(extension(16, vec(vec(b"", 1), 2))),
])
def test_bad_client_hellos(body: bytes) -> None:
    with pytest.raises(WireError):
        parse_client_hello(body)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_hostile_bytes_raise_only_wire_error(data: bytes) -> None:
    for parse in (parse_client_hello, parse_server_hello, parse_encrypted_extensions, parse_alert,
                  lambda d: parse_certificate(d, tls13=True),
                  lambda d: parse_certificate(d, tls13=False),
                  lambda d: [HandshakeReader().feed(r.fragment) for r in RecordReader().feed(d)]):
        try:
            parse(data)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(0, 2**16 - 1))
def test_mutated_hellos_raise_only_wire_error(noise: bytes, where: int) -> None:
    body = bytearray(hello_body(SNI + ALPN + VERSIONS))
    at = where % len(body)
    body[at : at + len(noise)] = noise
    try:
        parse_client_hello(bytes(body))
    except WireError:
        pass
