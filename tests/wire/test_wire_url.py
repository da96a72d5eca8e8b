"""probe.wire.url: URLs read and joined as the live check's client does it.

The live fetch sends what httpx makes of a URL and of each Location; replay
rebuilds those requests with probe.wire.url. These tests hold the two to
the same answer, refusals included.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.url import URL, is_ip_literal, url_host


def clients_view(text: str) -> tuple[str, str, str, int | None, str] | None:
    """What httpx makes of ``text``; None when it refuses it (any error:
    the live fetch turns each into a failure)."""
    try:
        url = httpx.URL(text)
        return str(url), url.scheme, url.raw_host.decode("ascii"), url.port, url.raw_path.decode()
    except Exception:
        return None


def our_view(text: str) -> tuple[str, str, str, int | None, str] | None:
    try:
        url = URL.parse(text)
    except WireError:
        return None
    return str(url), url.scheme, url.host, url.port, url.target


def clients_join(base: str, reference: str) -> str | None:
    try:
        return str(httpx.URL(base).join(reference))
    except Exception:
        return None


def our_join(base: str, reference: str) -> str | None:
    try:
        return str(URL.parse(base).join(reference))
    except WireError:
        return None


EXAMPLES = [
    "http://example.test/",
    "HTTPS://Example.TEST:443/a/./b/../c?x=1 2#frag ment",
    "HTTP://example.test:80/",  # the default port is looked up before lower-casing
    "http://example.test:8080",
    "http://user:pa ss@example.test/",
    "http://[2001:DB8::1]:8443/p",
    "http://[2001:db8::zz]/",
    "http://198.51.100.7/",
    "http://198.051.100.7/",
    "http://999.1.1.1/",
    "http://bücher.test/straße?q=é#ü",
    "http://xn--bcher-kva.test/",
    "http://a b.test/",
    "http://example.test:+80/",
    "http://example.test:x/",
    "http://example.test/%zz%41",
    "http://example.test/a/..",
    "http://example.test/..",
    "http:/path/only",
    "http://:80/",
    "//host.test/x",
    "////x",
    "::x",
    ":x",
    "1http://x",
    "/relative?q#f",
    "../up",
    "?q",
    "#f",
    "",
    "http://example.test/\x7f",
    "http://example.test/\t",
    "http://ex\u00e4mple\u200d.test/",
    "http://\u2603.test/",
    "http://a@b@c/",
    "http://a:b:c/",
    "http://[::1/",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_a_url_reads_as_the_client_reads_it(text: str) -> None:
    assert our_view(text) == clients_view(text)


@pytest.mark.parametrize(
    "base", ["http://example.test/a/b?q#f", "https://h.test", "http://[::1]:81/x/", "http:/.//["]
)
@pytest.mark.parametrize("location", EXAMPLES + ["https:/x", "//other.test", "b/../../../c", "."])
def test_a_location_joins_as_the_client_joins_it(base: str, location: str) -> None:
    assert our_join(base, location) == clients_join(base, location)


# Reserved and unsafe ASCII, non-ASCII, a control character, a lone surrogate.
_CHARS = st.sampled_from(
    [*"abcXYZ019:/?#[]@!$&'()*+,;=%-._~ \"<>`{}|\\^", "é", "中", "ß", "\u00a0", "\x00",
     "\ud800"]
)
_PIECE = st.text(_CHARS, max_size=8)


@st.composite
def url_texts(draw: st.DrawFn) -> str:
    """Mostly URL-shaped text, so the interesting branches are reached."""
    scheme = draw(st.sampled_from(["", "http:", "https:", "HTTP:", "ftp:", "x1+:"]))
    authority = draw(st.one_of(
        st.just(""),
        st.builds(lambda u, h, p: f"//{u}{h}{p}",
                  st.sampled_from(["", "user@", "u:p@"]) | _PIECE.map(lambda s: s + "@"),
                  st.sampled_from(["example.test", "EXAMPLE.test", "[::1]", "127.0.0.1",
                                   "bücher.test"]) | _PIECE,
                  st.sampled_from(["", ":80", ":443", ":8080", ":"])
                  | _PIECE.map(lambda s: ":" + s)),
    ))
    path = draw(st.lists(st.sampled_from(["", ".", "..", "a", "b c"]) | _PIECE, max_size=4))
    tail = draw(st.sampled_from(["", "?", "?q=1", "#", "#f"]) | _PIECE)
    return scheme + authority + "/".join(path) + tail


@settings(max_examples=600, deadline=None)
@given(st.one_of(url_texts(), st.text(_CHARS, max_size=30)))
def test_any_text_reads_as_the_client_reads_it(text: str) -> None:
    assert our_view(text) == clients_view(text)


@settings(max_examples=300, deadline=None)
@given(url_texts(), url_texts())
def test_any_location_joins_as_the_client_joins_it(base: str, location: str) -> None:
    assert our_join(base, location) == clients_join(base, location)


def test_address_helpers() -> None:
    assert is_ip_literal("127.0.0.1") and is_ip_literal("::1")
    assert not is_ip_literal("localhost") and not is_ip_literal("")
    assert url_host("::1") == "[::1]" and url_host("127.0.0.1") == "127.0.0.1"
