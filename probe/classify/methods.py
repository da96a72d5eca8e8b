"""The names of the ways a target can fail, and what one stage concluded.

Every ``method`` string the classifier emits is a member of ``Method``;
docs/classification.md lists the same set in its method table, and a test
checks that the two (and the test table) never drift apart.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


class Method(enum.StrEnum):
    OK = "ok"
    # Inconclusive: we could not measure, or the network itself is down.
    NOT_MEASURED = "not-measured"
    ADDRESS_NOT_ALLOWED = "address-not-allowed"
    RUN_DEADLINE = "run-deadline"
    RESOLVER_UNAVAILABLE = "resolver-unavailable"
    NETWORK_UNAVAILABLE = "network-unavailable"
    DNS_NXDOMAIN = "dns-nxdomain"
    DNS_FAILURE = "dns-failure"
    DNS_INJECTION = "dns-injection"
    DNS_BOGON = "dns-bogon"
    DNS_UNEXPECTED_ASN = "dns-unexpected-asn"
    TCP_REFUSED = "tcp-refused"
    TCP_RESET = "tcp-reset"
    TCP_TIMEOUT = "tcp-timeout"
    TCP_UNREACHABLE = "tcp-unreachable"
    TCP_FAILURE = "tcp-failure"
    TLS_RESET = "tls-reset"
    TLS_TIMEOUT = "tls-timeout"
    TLS_EOF = "tls-eof"
    TLS_MITM = "tls-mitm"
    TLS_FAILURE = "tls-failure"
    HTTP_FAILURE = "http-failure"
    HTTP_BLOCKPAGE = "http-blockpage"
    # Degraded: everything worked, but the body crawled next to the controls'.
    THROTTLED = "throttled"
    # VPN handshakes (docs/vpn.md).
    HANDSHAKE_OK = "handshake-ok"
    HANDSHAKE_SLOW = "handshake-slow"
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    HANDSHAKE_RESET = "handshake-reset"
    HANDSHAKE_REFUSED = "handshake-refused"
    HANDSHAKE_UNEXPECTED_REPLY = "handshake-unexpected-reply"
    HANDSHAKE_FAILURE = "handshake-failure"
    HANDSHAKE_NEEDS_KEY = "handshake-needs-key"
    # Feature level: some targets reachable, others blocked or degraded.
    PARTIAL = "partial"


class StageOutcome(enum.Enum):
    ABSENT = "absent"  # the stage has no observations
    PASSED = "passed"
    PARTIAL = "partial"  # some endpoints passed, others failed
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Stage:
    """What one stage (DNS, connect, HTTP) of a target concluded.

    ``method`` is ``ok`` when the stage passed, otherwise the failing
    method; ``evidence`` indexes the target's observation tuple.
    """

    outcome: StageOutcome
    method: Method
    reason: str
    evidence: tuple[int, ...] = ()


def most_common(values: Iterable[str]) -> str:
    """The most frequent value; ties go to the alphabetically first, so
    the choice never depends on measurement order (reports must be
    reproducible byte for byte)."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def tally(values: Iterable[str]) -> str:
    """``a`` for one distinct value, ``a ×2, b ×1`` for several."""
    counts = Counter(values)
    if len(counts) == 1:
        return next(iter(counts))
    ordered = sorted(counts, key=lambda v: (-counts[v], v))
    return ", ".join(f"{v} ×{counts[v]}" for v in ordered)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 address``, ``2 addresses``."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"
