"""The lab's DNS zone: what the lab's resolver answers for each name.

A zone is built from the address plan (every lab name answers with its
pool addresses) and the scenario's overrides: other addresses, or a
resolver-side failure for a name. It travels to the DNS server process as
JSON (:func:`Zone.to_json` / :func:`Zone.from_json`).
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_DELAY", "Answer", "Zone", "ZoneEntry"]

# Real answers wait this long, so an on-path injector's forged answer is
# always first (as on a real censored path) and the race is deterministic.
DEFAULT_DELAY = 0.020


class Answer(enum.StrEnum):
    """How the resolver treats a name."""

    ADDRESSES = "addresses"  # A/AAAA records of the entry's addresses
    NXDOMAIN = "nxdomain"  # RFC 1035 section 4.1.1 RCODE 3
    SERVFAIL = "servfail"  # RCODE 2
    NO_ANSWER = "no-answer"  # NOERROR with an empty answer section (RFC 2308 NODATA)
    DROP = "drop"  # never answers: the client times out


@dataclass(frozen=True, slots=True)
class ZoneEntry:
    answer: Answer = Answer.ADDRESSES
    addresses: tuple[str, ...] = ()  # IPv4 first, then IPv6, each in the order served

    def records(self, rtype: str) -> tuple[str, ...]:
        version = {"A": 4, "AAAA": 6}.get(rtype)
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == version)


@dataclass(frozen=True, slots=True)
class Zone:
    entries: Mapping[str, ZoneEntry] = field(default_factory=dict)
    delay: float = DEFAULT_DELAY  # seconds before every real answer leaves

    @classmethod
    def from_plan(cls, plan: Mapping[str, tuple[str, ...]], delay: float = DEFAULT_DELAY) -> Zone:
        return cls({name: ZoneEntry(Answer.ADDRESSES, tuple(a)) for name, a in plan.items()}, delay)

    def lookup(self, name: str) -> ZoneEntry | None:
        return self.entries.get(name.lower().rstrip("."))

    def addresses(self) -> dict[str, tuple[str, ...]]:
        """Name -> addresses served (IPv4 first), for names that answer with addresses."""
        return {
            name: _ordered(entry.addresses)
            for name, entry in sorted(self.entries.items())
            if entry.answer is Answer.ADDRESSES
        }

    def to_json(self) -> str:
        return json.dumps(
            {
                "delay": self.delay,
                "names": {
                    name: {"answer": e.answer.value, "addresses": list(e.addresses)}
                    for name, e in sorted(self.entries.items())
                },
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Zone:
        """Read what :meth:`to_json` wrote; ValueError for anything else."""
        try:
            data = json.loads(text)
            entries = {
                str(name).lower(): ZoneEntry(
                    Answer(item["answer"]),
                    _ordered(tuple(str(ipaddress.ip_address(a)) for a in item["addresses"])),
                )
                for name, item in data["names"].items()
            }
            delay = float(data["delay"])
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a lab zone file: {exc}") from None
        if not 0 <= delay <= 10:
            raise ValueError(f"zone delay {delay} s is outside 0..10 s")
        return cls(entries, delay)


def _ordered(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """IPv4 first, each family keeping its own order (the order 'partial' counts in)."""
    return tuple(sorted(addresses, key=lambda a: ipaddress.ip_address(a).version))
