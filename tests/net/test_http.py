"""The HTTP check against loopback HTTP and HTTPS servers."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from servers import PAGE, SERVER, LoopbackServers

from probe.model import Failure, HTTPHop, HTTPObservation
from probe.net import http
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.errors import CheckError
from probe.net.trust import TrustStore


class Names:
    """A stand-in for the measured resolver: a zone, and who asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, name: str) -> str:
        self.asked.append(name)
        if name == "other.test":
            return SERVER
        raise CheckError(Failure.DNS_NXDOMAIN, f"{name}: no such name")


def _fetch(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, path: str, scheme: str = "http",
           address: str | None = SERVER, names: Names | None = None,
           timeout: float = 2.0, **options: object) -> HTTPObservation:
    url = f"{scheme}://good.test:{loopback.ports[scheme]}{path}"
    return asyncio.run(http.fetch(url, "GET", address, dialer, Clock(), timeout, trust,
                                  resolve=names or Names(), **options))  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_page(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, scheme: str) -> None:
    names = Names()
    observation = _fetch(loopback, dialer, trust, "/page", scheme, names=names)
    assert observation.failure is None
    assert observation.url == f"{scheme}://good.test:{loopback.ports[scheme]}/page"
    assert observation.method == "GET" and observation.address == SERVER
    assert observation.status == 200
    assert observation.body_length == len(PAGE) and not observation.body_truncated
    assert observation.body_sha256 == hashlib.sha256(PAGE).hexdigest()
    assert observation.redirects == ()
    assert names.asked == []  # the URL's host went to the pinned address
    assert 0 <= observation.t0 < observation.t


def test_addresses_are_scrubbed_except_the_servers(loopback: LoopbackServers, dialer: Dialer,
                                                   trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/page")
    headers = dict(observation.headers)
    # The client's own address (127.0.0.1) and third parties' are gone;
    # the server's, which the check dialled, stays.
    assert headers["x-client"] == "[scrubbed]"
    assert headers["x-server"] == SERVER
    assert headers["x-forwarded-for"] == "[scrubbed], [[scrubbed]]:443"
    assert observation.title == "Hello from 127.0.0.2, you are [scrubbed] (via [scrubbed])"
    assert "127.0.0.1" not in repr(observation)


def test_a_redirect_is_followed_and_recorded(loopback: LoopbackServers, dialer: Dialer,
                                             trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/redirect")
    assert observation.failure is None and observation.status == 200
    assert observation.redirects == (
        HTTPHop(f"http://good.test:{loopback.ports['http']}/redirect", 302, "/page"),)
    assert observation.title is not None and observation.title.startswith("Hello")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_redirect_to_another_host_is_resolved_by_the_caller(
    loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, scheme: str
) -> None:
    names = Names()
    observation = _fetch(loopback, dialer, trust, "/redirect-other", scheme, names=names)
    assert observation.failure is None and observation.status == 200
    assert names.asked == ["other.test"]
    port = loopback.ports[scheme]
    assert observation.redirects == (
        HTTPHop(f"{scheme}://good.test:{port}/redirect-other", 301,
                f"{scheme}://other.test:{port}/page"),)


def test_a_redirect_host_that_does_not_resolve_fails_the_fetch(
    loopback: LoopbackServers, dialer: Dialer, trust: TrustStore
) -> None:
    observation = _fetch(loopback, dialer, trust, "/redirect-nx")
    assert observation.failure is Failure.DNS_NXDOMAIN
    assert observation.status is None and observation.body_sha256 is None
    assert [hop.status for hop in observation.redirects] == [302]


def test_without_an_address_the_host_is_resolved(loopback: LoopbackServers, dialer: Dialer,
                                                 trust: TrustStore) -> None:
    names = Names()
    observation = _fetch(loopback, dialer, trust, "/page", address=None, names=names)
    assert observation.failure is Failure.DNS_NXDOMAIN and names.asked == ["good.test"]
    assert observation.address is None


def test_too_many_redirects(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/loop", max_redirects=3)
    assert observation.failure is Failure.HTTP_TOO_MANY_REDIRECTS
    assert len(observation.redirects) == 4 and observation.status is None


def test_the_body_is_capped(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/big", body_cap=1000)
    assert observation.failure is None and observation.status == 200
    assert observation.body_length == 1000 and observation.body_truncated
    assert observation.body_sha256 == hashlib.sha256(b"x" * 1000).hexdigest()
    assert dict(observation.headers)["content-length"] == "200000"


def test_a_download_is_timed_to_its_end(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/big", download_time=2.0)
    transfer = observation.transfer
    assert transfer is not None and transfer.size == 200_000 and not transfer.cut
    assert 0 <= transfer.seconds < 2.0 and not observation.body_truncated
    assert observation.body_length == 200_000


def test_a_crawling_download_is_cut_at_the_budget(loopback: LoopbackServers, dialer: Dialer,
                                                   trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/trickle", download_time=0.5, timeout=5.0)
    transfer = observation.transfer
    assert observation.failure is None and observation.status == 200
    assert transfer is not None and transfer.cut and transfer.seconds == 0.5
    # About 10 chunks of 2 kB in half a second; far from the 1 MB announced.
    assert 2_000 <= transfer.size <= 40_000
    assert observation.body_truncated and observation.body_length == transfer.size


def test_without_a_download_time_nothing_is_timed(loopback: LoopbackServers, dialer: Dialer,
                                                  trust: TrustStore) -> None:
    assert _fetch(loopback, dialer, trust, "/big").transfer is None


@pytest.mark.parametrize(
    ("needle", "path", "cap", "found"),
    [
        (None, "/page", 1 << 20, None),
        ("your address", "/page", 1 << 20, True),
        ("not there", "/page", 1 << 20, False),
        ("not there", "/big", 1000, None),  # cut short: cannot tell
    ],
)
def test_body_contains(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, needle: str | None,
                       path: str, cap: int, found: bool | None) -> None:
    observation = _fetch(loopback, dialer, trust, path, body_contains=needle, body_cap=cap)
    assert observation.body_contains_found is found


@pytest.mark.parametrize(
    ("path", "failure"),
    [("/garbage", Failure.HTTP_INVALID_RESPONSE), ("/close", Failure.EOF)],
)
def test_broken_responses(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, path: str,
                          failure: Failure) -> None:
    observation = _fetch(loopback, dialer, trust, path)
    assert observation.failure is failure
    assert observation.status is None and observation.body_length is None


def test_a_silent_server_times_out(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    observation = _fetch(loopback, dialer, trust, "/slow", timeout=0.4)
    assert observation.failure is Failure.GENERIC_TIMEOUT
    assert 0.35 <= observation.t - observation.t0 < 1.5


def test_https_verifies_with_the_given_trust(loopback: LoopbackServers, dialer: Dialer) -> None:
    observation = _fetch(loopback, dialer, TrustStore(), "/page", "https")
    assert observation.failure is Failure.SSL_UNKNOWN_AUTHORITY


@pytest.mark.parametrize(
    ("port", "failure"),
    [("closed", Failure.CONNECTION_REFUSED), ("reset", Failure.CONNECTION_RESET),
     ("close", Failure.EOF)],
)
def test_connection_failures(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, port: str,
                             failure: Failure) -> None:
    url = f"http://good.test:{loopback.ports[port]}/"
    observation = asyncio.run(http.fetch(url, "GET", SERVER, dialer, Clock(), 1.0, trust,
                                         resolve=Names()))
    assert observation.failure is failure and observation.address == SERVER
