"""URLs as the live HTTP check's client (httpx) reads and writes them.

A URL splits into scheme, authority, path, query and fragment (RFC 3986
section 3), and each part is normalised as the client normalises it
before it sends a request: scheme and host lower-cased, a non-ASCII host
in its IDNA form, a scheme's default port left out, "." and ".." segments
removed, and every character outside the part's safe set percent-encoded
as UTF-8 (the WHATWG URL Standard's percent-encode sets). Replay rebuilds
the requests a fetch made and the redirects it followed with these rules,
so they must give the client's answer, quirks included (noted where they
stray from the RFC); tests/wire/test_wire_url.py compares them with
httpx's own.

Malformed input raises only WireError.
"""

from __future__ import annotations

import ipaddress
import re
import string
from dataclasses import dataclass
from urllib.parse import urljoin

import idna

from probe.wire.cursor import WireError

# The client refuses longer URLs.
_MAX_LENGTH = 65536

# WHATWG URL Standard, "special schemes": the port a URL leaves out.
_DEFAULT_PORTS = {"ftp": 21, "http": 80, "https": 443, "ws": 80, "wss": 443}

# [scheme ":"] ["//" authority] path ["?" query] ["#" fragment] (RFC 3986
# section 3). As in the client, a scheme must start with a letter (else the
# text is a relative path) and a bare leading ":" counts as an empty scheme.
_URL = re.compile(
    r"(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)?:)?"
    r"(?://(?P<authority>[^/?#]*))?"
    r"(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?"
)
# [userinfo "@"] host [":" port] (RFC 3986 section 3.2), the userinfo up
# to the last "@", the host an IPv6 literal in brackets or up to a ":".
_AUTHORITY = re.compile(r"(?:(?P<userinfo>.*)@)?(?P<host>\[.*\]|[^:@]*):?(?P<port>.*)")
# A host of four dotted numbers must be an IPv4 address (RFC 3986 section 3.2.2).
_IPV4_LIKE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def _printable_but(excluded: str) -> frozenset[str]:
    return frozenset(chr(c) for c in range(0x20, 0x7F)) - frozenset(excluded)


# What each part keeps as is (the complement of the WHATWG URL Standard's
# percent-encode sets, section 1.3). Every set keeps "%", so escapes that
# are already there survive.
_FRAGMENT_SAFE = _printable_but(' "<>`')
_QUERY_SAFE = _printable_but(' "#<>')
_PATH_SAFE = _printable_but(' "#<>?`{}')
_USERINFO_SAFE = _PATH_SAFE - frozenset("/;=@[\\]^|")
# A registered name: unreserved and sub-delims (RFC 3986 section 3.2.2),
# and the few others browsers let through.
_HOST_SAFE = frozenset(string.ascii_letters + string.digits + "-._~" + "!$&'()*+,;=" + '"`{}%|\\')


@dataclass(frozen=True, slots=True)
class URL:
    """A normalised URL; ``str()`` gives the client's spelling of it."""

    scheme: str  # lower-case; "" in a relative reference
    userinfo: str
    # ASCII (IDNA), lower-case; an IPv6 literal as written, without brackets
    host: str
    port: int | None  # None: absent, or the scheme's default
    path: str
    query: str | None  # None: no "?"
    fragment: str | None  # None: no "#"

    @classmethod
    def parse(cls, text: str) -> URL:
        """``text`` (absolute, or a relative reference) normalised."""
        if len(text) > _MAX_LENGTH:
            raise WireError(f"URL of {len(text)} characters")
        control = next((c for c in text if c.isascii() and not c.isprintable()), None)
        if control is not None:
            raise WireError(f"control character {control!r} in URL")
        # Both patterns match any text (every part is optional).
        parts = _URL.match(text)
        assert parts is not None
        authority = _AUTHORITY.match(parts["authority"] or "")
        assert authority is not None
        raw_scheme = parts["scheme"] or ""
        try:
            userinfo = _quote(authority["userinfo"] or "", _USERINFO_SAFE)
            host = _host(authority["host"])
            port = _port(authority["port"], raw_scheme)
            has_authority = bool(userinfo or host) or port is not None
            path = _path(parts["path"], bool(raw_scheme), has_authority)
            query = None if parts["query"] is None else _quote(parts["query"], _QUERY_SAFE)
            fragment = (
                None if parts["fragment"] is None else _quote(parts["fragment"], _FRAGMENT_SAFE)
            )
        except UnicodeError as exc:  # a lone surrogate, or a name IDNA refuses
            raise WireError(f"URL {text[:80]!r}: {exc}") from None
        return cls(raw_scheme.lower(), userinfo, host, port, path, query, fragment)

    def join(self, reference: str) -> URL:
        """``reference`` (a Location, say) resolved against this URL
        (RFC 3986 section 5.2), as the client joins them: both normalised,
        then joined by the standard library's ``urljoin``."""
        relative = str(URL.parse(reference))
        try:
            joined = urljoin(str(self), relative)
        except ValueError as exc:  # urlsplit refuses a "[" that opens no IPv6 literal
            raise WireError(f"cannot join {relative[:80]!r} to this URL: {exc}") from None
        return URL.parse(joined)

    @property
    def target(self) -> str:
        """The request-target the client sends (RFC 9112 section 3.2.1, origin-form)."""
        return (self.path or "/") + ("" if self.query is None else f"?{self.query}")

    def __str__(self) -> str:
        authority = (
            (f"{self.userinfo}@" if self.userinfo else "")
            + url_host(self.host)
            + ("" if self.port is None else f":{self.port}")
        )
        return (
            (f"{self.scheme}:" if self.scheme else "")
            + (f"//{authority}" if authority else "")
            + self.path
            + ("" if self.query is None else f"?{self.query}")
            + ("" if self.fragment is None else f"#{self.fragment}")
        )


def is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def url_host(host: str) -> str:
    """``host`` as written in a URL: IPv6 literals in brackets (RFC 3986 3.2.2)."""
    return f"[{host}]" if ":" in host else host


def _host(text: str) -> str:
    if not text:
        return ""
    if _IPV4_LIKE.fullmatch(text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise WireError(f"invalid IPv4 address {text!r} in URL") from None
        return text
    if text.startswith("[") and text.endswith("]"):
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise WireError(f"invalid IPv6 address {text!r} in URL") from None
        return text[1:-1]  # as written: the client does not compress it
    if text.isascii():
        return _quote(text.lower(), _HOST_SAFE)
    return idna.encode(text.lower()).decode("ascii")


def _port(text: str | None, scheme: str) -> int | None:
    if not text:
        return None
    try:
        port = int(text)  # as lenient as the client: "+80", " 80", "8_0"
    except ValueError:
        raise WireError(f"invalid port {text!r} in URL") from None
    # The client looks the default up before it lower-cases the scheme.
    return None if port == _DEFAULT_PORTS.get(scheme) else port


def _path(text: str, has_scheme: bool, has_authority: bool) -> str:
    if not has_scheme and not has_authority:
        # RFC 3986 section 4.2: a relative reference's path cannot start
        # with "//" (that would be an authority) nor, here, with ":".
        if text.startswith(("//", ":")):
            raise WireError(f"relative URL path {text[:80]!r}")
        return _quote(text, _PATH_SAFE)
    return _quote(_remove_dot_segments(text), _PATH_SAFE)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, as the client does it: segment by segment,
    so a path ending in "." or ".." loses its final "/" too."""
    segments = path.split("/")
    if "." not in segments and ".." not in segments:
        return path
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept and kept != [""]:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    return "/".join(kept)


def _quote(text: str, safe: frozenset[str]) -> str:
    """``text`` with each character outside ``safe`` percent-encoded as
    UTF-8 (RFC 3986 section 2.1); UnicodeEncodeError for a lone surrogate."""
    if all(c in safe for c in text):
        return text
    return "".join(
        c if c in safe else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text
    )
