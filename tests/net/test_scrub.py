"""Scrubbing IP literals out of what servers send back."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.net.scrub import SCRUBBED, scrub


@pytest.mark.parametrize(
    ("text", "keep", "expected"),
    [
        ("client=10.1.2.3", (), f"client={SCRUBBED}"),
        ("server 198.51.100.7", ("198.51.100.7",), "server 198.51.100.7"),
        ("for=[2001:db8::1]:443", (), f"for=[{SCRUBBED}]:443"),
        ("v6 2001:db8:0:0:0:0:0:1", ("2001:db8::1",), "v6 2001:db8:0:0:0:0:0:1"),
        ("mapped ::ffff:10.0.0.1", (), f"mapped {SCRUBBED}"),
        ("zone fe80::1%eth0", (), f"zone {SCRUBBED}%eth0"),
        # Glued to letters or hex digits: still found.
        ("Cafe10.1.2.3", (), f"Cafe{SCRUBBED}"),
        ("deadbeef2001:db8::1", (), f"deadbeef{SCRUBBED}"),
        ("id-2001:db8::1:2", (), f"id-{SCRUBBED}"),
        # Not addresses: left alone.
        ("Date: Mon, 01 Jan 2024 12:30:45 GMT", (), "Date: Mon, 01 Jan 2024 12:30:45 GMT"),
        ("nginx/1.18.0", (), "nginx/1.18.0"),
        ("mac 00:11:22:33:44:55", (), "mac 00:11:22:33:44:55"),
        ("999.1.1.1", (), "999.1.1.1"),
    ],
)
def test_scrub(text: str, keep: tuple[str, ...], expected: str) -> None:
    assert scrub(text, keep) == expected


_FILLER = st.text(alphabet="ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ ,;=/()[]<>\"'-_", max_size=12)


@given(_FILLER, st.ip_addresses(), _FILLER, st.booleans())
def test_no_address_survives_unless_kept(before: str, address: ipaddress.IPv4Address
                                         | ipaddress.IPv6Address, after: str,
                                         exploded: bool) -> None:
    written = address.exploded if exploded else str(address)
    text = before + written + after
    assert written not in scrub(text, ())
    # A kept address stays, as written (an IPv6 form embedding a dotted
    # quad loses the quad to the IPv4 pass: more removed, never less).
    if "." not in written or address.version == 4:
        assert scrub(text, (str(address),)) == text


@given(st.text(alphabet="0123456789abcdefABCDEF.:x ", max_size=200))
def test_one_pass_finds_everything(text: str) -> None:
    # Nothing a second pass could still find, and no new address made
    # out of the pieces around a replacement.
    once = scrub(text, ())
    assert scrub(once, ()) == once
