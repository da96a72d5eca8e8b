"""Remove IP addresses from text a server sent back.

Servers, proxies and block pages echo the client's address in headers
(X-Forwarded-For, Set-Cookie, CF-Connecting-IP...) and page titles, and
a volunteer's address must never land in a report. Behind NAT the probe
cannot know its public address, so every IP literal is scrubbed except
the addresses of the servers the check itself dialled, which are
evidence (a redirect to a block-page address, a proxy naming its
upstream). The scrubber errs towards removing too much.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

SCRUBBED = "[scrubbed]"

_IPV4 = re.compile(r"(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?!\d)")
# Maximal runs of hex digits, dots and colons: an IPv6 literal (RFC 4291
# section 2.2 text forms) lies inside one that holds two colons or more.
# One character class, so matching cannot backtrack on hostile input.
_HEX_RUN = re.compile(r"[0-9A-Fa-f.:]+")
# Longest text form: eight groups, or six groups and a dotted quad.
_IPV6_MAX = 45


def scrub(text: str, keep: Collection[str]) -> str:
    """``text`` with every IP literal not in ``keep`` replaced by SCRUBBED."""
    kept = {ipaddress.ip_address(address) for address in keep}
    text = _HEX_RUN.sub(lambda match: _scrub_ipv6_run(match.group(), kept), text)
    return _IPV4.sub(lambda match: _replacement(match.group(), kept), text)


def _replacement(candidate: str, kept: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> str:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    return candidate if address in kept else SCRUBBED


def _scrub_ipv6_run(
    run: str, kept: set[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> str:
    """Replace, left to right, the longest IPv6 literal at each position."""
    if run.count(":") < 2:
        return run
    out: list[str] = []
    start = 0
    while start < len(run):
        end = _longest_ipv6(run, start)
        if end is None:
            out.append(run[start])
            start += 1
        else:
            out.append(_replacement(run[start:end], kept))
            start = end
    return "".join(out)


def _longest_ipv6(run: str, start: int) -> int | None:
    for end in range(min(len(run), start + _IPV6_MAX), start + 1, -1):
        try:
            ipaddress.IPv6Address(run[start:end])
        except ValueError:
            continue
        return end
    return None
