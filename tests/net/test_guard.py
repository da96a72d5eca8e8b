"""PROBE_ALLOW_NETWORKS: parsing, and the dialer refusing before any socket exists."""

from __future__ import annotations

import asyncio
import socket
from typing import NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.errors import InputError
from probe.model import Failure
from probe.net import dns, http, tcp, tls
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.guard import ENV, AddressNotAllowedError, AllowList, AllowListError
from probe.net.trust import TrustStore
from probe.resolver import parse_resolver

V4_LOOPBACK_ONLY = AllowList.parse("127.0.0.0/8")


def test_unset_allows_everything() -> None:
    allow = AllowList.from_env({})
    assert allow.permits("198.51.100.1") and allow.permits("2001:db8::1")


def test_from_env_parses_the_variable() -> None:
    allow = AllowList.from_env({ENV: " 127.0.0.0/8 , ::1/128,198.51.100.0/24"})
    assert allow.permits("127.1.2.3")
    assert allow.permits("::1")
    assert allow.permits("198.51.100.77")
    assert not allow.permits("198.51.101.1")
    assert not allow.permits("2001:db8::1")


def test_a_bare_address_is_one_host() -> None:
    allow = AllowList.parse("127.0.0.2")
    assert allow.permits("127.0.0.2") and not allow.permits("127.0.0.3")


def test_ipv4_mapped_ipv6_is_judged_as_ipv4() -> None:
    # ::ffff:198.51.100.1 on an AF_INET6 socket reaches 198.51.100.1.
    assert not V4_LOOPBACK_ONLY.permits("::ffff:198.51.100.1")
    assert V4_LOOPBACK_ONLY.permits("::ffff:127.0.0.1")


@pytest.mark.parametrize(
    ("value", "bad"),
    [("", "''"), ("127.0.0.0/8,", "''"), ("127.0.0.0/33", "'127.0.0.0/33'"),
     ("localhost", "'localhost'"), ("127.0.0.0/8;::1", "'127.0.0.0/8;::1'")],
)
def test_malformed_values_name_the_variable_and_the_entry(value: str, bad: str) -> None:
    with pytest.raises(AllowListError) as info:
        AllowList.from_env({ENV: value})
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert message.startswith(f"{ENV}: entry ") and bad in message
    assert "\n" not in message


@given(st.text(max_size=60))
def test_parse_gives_an_allow_list_or_a_one_line_error(value: str) -> None:
    try:
        allow = AllowList.parse(value)
    except AllowListError as exc:
        assert "\n" not in str(exc)
    else:
        assert allow.networks is not None and len(allow.networks) == value.count(",") + 1


def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, creating a socket fails the test."""

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a socket was created for a destination outside the allow list")

    monkeypatch.setattr(socket, "socket", refuse)


def test_dialer_refuses_before_creating_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> list[str]:
        # The loop's own sockets exist already; the dialer must make none.
        _no_sockets(monkeypatch)
        dialer = Dialer(V4_LOOPBACK_ONLY)
        refused = []
        for address in ("::1", "198.51.100.1", "::ffff:198.51.100.1"):
            with pytest.raises(AddressNotAllowedError):
                await dialer.open_tcp(address, 443, 1.0)
            with pytest.raises(AddressNotAllowedError):
                await dialer.open_udp(address, 53)
            refused.append(address)
        assert dialer.local_addresses == frozenset()
        return refused

    assert asyncio.run(run()) == ["::1", "198.51.100.1", "::ffff:198.51.100.1"]


def test_dialer_takes_ip_literals_only() -> None:
    with pytest.raises(ValueError, match="IP literals"):
        asyncio.run(Dialer(AllowList()).open_tcp("localhost", 80, 1.0))


def test_every_check_reports_address_not_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> list[Failure | None]:
        _no_sockets(monkeypatch)
        dialer, clock, trust = Dialer(V4_LOOPBACK_ONLY), Clock(), TrustStore()

        async def never(name: str) -> str:
            raise AssertionError("no lookup expected")

        tcp_obs = await tcp.connect("198.51.100.1", 443, dialer, clock, 1.0)
        connect, tls_obs = await tls.connect_and_handshake(
            "::1", 443, "example.test", (), dialer, clock, 1.0, trust)
        udp = await dns.resolve("example.test", "A", parse_resolver("udp://198.51.100.53"),
                                dialer, clock, 1.0, 0.1)
        doh = await dns.resolve("example.test", "A",
                                parse_resolver("https://dns.test/dns-query@198.51.100.53"),
                                dialer, clock, 1.0, 0.1)
        web = await http.fetch("http://198.51.100.1/", "GET", None, dialer, clock, 1.0, trust,
                               resolve=never)
        assert web.address == "198.51.100.1"
        return [o.failure for o in (tcp_obs, connect, tls_obs, udp, doh, web)]

    assert asyncio.run(run()) == [Failure.ADDRESS_NOT_ALLOWED] * 6
