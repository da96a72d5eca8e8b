"""What a response body says, by the rules the live check and replay share:
its charset, its title, whether it holds an expected string.

Pure (stdlib and the scrubber): ``probe.net.http`` applies these to what it
read, ``probe.replay.http`` to what a capture shows, so the two cannot
drift apart.
"""

from __future__ import annotations

import email.message
import html

from probe.net.scrub import scrub

# Characters of title kept; a cut must not leave half an address behind.
_TITLE_MAX = 256
_ADDRESS_CHARS = "0123456789abcdefABCDEF.:"


def content_charset(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The charset parameter of Content-Type (RFC 9110 section 8.3.2), read
    as httpx reads it (``Response.charset_encoding``, which the live check
    used): every Content-Type value joined with ", ", then the email
    package's parameter parsing (quotes, RFC 2231, lowercased)."""
    values = [value for name, value in headers if name.lower() == "content-type"]
    if not values:
        return None
    message = email.message.Message()
    message["content-type"] = ", ".join(values)
    return message.get_content_charset(failobj=None)


def find_in_body(body: bytes, needle: str | None, truncated: bool) -> bool | None:
    """Whether ``needle`` is in ``body``; None when unasked or undecidable
    (not found in a body cut at body_cap)."""
    if needle is None:
        return None
    if needle.encode() in body:
        return True
    return None if truncated else False


def page_title(body: bytes, charset: str | None, keep: set[str]) -> str | None:
    """The first <title>'s text, as a browser's tab would show it.

    Found with plain searches, not a regular expression: linear time
    whatever a hostile body holds.
    """
    lower = body.lower()
    start = lower.find(b"<title")
    opened = lower.find(b">", start) if start >= 0 else -1
    closed = lower.find(b"</title", opened) if opened >= 0 else -1
    if closed < 0:
        return None
    raw = body[opened + 1 : closed]
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        text = raw.decode("utf-8", errors="replace")
    text = " ".join(html.unescape(text).split())
    if len(text) > _TITLE_MAX:
        text = text[:_TITLE_MAX].rstrip(_ADDRESS_CHARS)
    return scrub(text, keep)
