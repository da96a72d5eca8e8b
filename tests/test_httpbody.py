"""probe.httpbody: what a response body says, for live and replay alike."""

from __future__ import annotations

import httpx
import pytest

from probe.httpbody import content_charset, find_in_body, page_title


@pytest.mark.parametrize(
    ("body", "title"),
    [
        (b"<html><TITLE lang=en>A &amp; B\n\t page</TITLE>", "A & B page"),
        (b"<title>first</title><title>second</title>", "first"),
        (b"<title>never closed", None),
        (b"no title at all", None),
        (b"<title>" + b"9" * 300 + b"</title>", ""),  # cut where an address could hide
        ("<title>caf\u00e9 10.0.0.1</title>".encode("latin-1"), "caf\ufffd [scrubbed]"),
    ],
)
def test_title(body: bytes, title: str | None) -> None:
    assert page_title(body, None, set()) == title


def test_title_uses_the_declared_charset() -> None:
    body = "<title>caf\u00e9</title>".encode("latin-1")
    assert page_title(body, "latin-1", set()) == "caf\u00e9"
    assert page_title(body, "no-such-charset", set()) == "caf\ufffd"


@pytest.mark.parametrize("values", [
    [],
    ["text/html"],
    ["text/html; charset=UTF-8"],
    ['text/html; charset="iso-8859-1"'],
    ["text/html;charset=utf-8;q=1"],
    ["text/html; charset = koi8-r"],
    ["text/html; charset*=utf-8''windows-1251"],
    ["text/html; charset=", "text/plain; charset=latin-1"],
    ["text/plain", "text/html; charset=utf-8"],
    ["text/html; charset=caf\u00e9"],
])
def test_charset_is_read_as_httpx_reads_it(values: list[str]) -> None:
    """The live check read it with httpx; replay now reads it the same way."""
    headers = tuple(("Content-Type", value) for value in values)
    response = httpx.Response(200, headers=[(k, v.encode()) for k, v in headers])
    assert content_charset(headers) == response.charset_encoding


def test_find_in_body() -> None:
    assert find_in_body(b"abc", "b", truncated=False) is True
    assert find_in_body(b"abc", "x", truncated=False) is False
    assert find_in_body(b"abc", "x", truncated=True) is None  # may be past the cap
    assert find_in_body(b"abc", None, truncated=False) is None
