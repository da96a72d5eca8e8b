"""The DNS stage: what the target's lookups say about its name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from probe.classify.addresses import (
    Address,
    bogon_label,
    parse_address,
    parse_networks,
    within,
)
from probe.classify.methods import Method, Stage, StageOutcome, plural
from probe.model import (
    DNSObservation,
    DNSResponse,
    Failure,
    Observation,
    Target,
    TargetKind,
)


@dataclass(frozen=True, slots=True)
class DNSStage:
    stage: Stage
    # Answers outside expect.prefixes, in words; None when all are inside
    # or the target has no prefixes. Decisive only for dns targets: for the
    # others a later stage that succeeds outweighs a stale expectation.
    unexpected: str | None = None


def dns_failure(observation: DNSObservation) -> str | None:
    """The failure a lookup amounts to, None if it got an answer.

    Also judges responses whose failure field was left empty, so that a
    NXDOMAIN is a NXDOMAIN however the resolver layer recorded it.
    """
    if observation.failure is not None:
        return observation.failure.value
    if not observation.responses:
        return Failure.DNS_NO_ANSWER.value
    failure = observation.responses[0].stub_failure(observation.rtype)
    return None if failure is None else failure.value


def response_addresses(response: DNSResponse) -> tuple[Address, ...]:
    parsed = (parse_address(a.data) for a in response.answers if a.rtype in ("A", "AAAA"))
    return tuple(a for a in parsed if a is not None)


def resolved_addresses(observation: DNSObservation) -> tuple[Address, ...]:
    """Addresses of the first response (the one a stub resolver uses),
    or () when the lookup failed."""
    if dns_failure(observation) is not None:
        return ()
    return response_addresses(observation.responses[0])


def _answer_set(response: DNSResponse) -> tuple[str, frozenset[tuple[str, str]]]:
    # TTLs are left out: a resolver's cache lowers them between answers.
    return response.rcode.upper(), frozenset(
        (a.rtype.upper(), a.data.lower()) for a in response.answers
    )


def _describe(answer_set: tuple[str, frozenset[tuple[str, str]]]) -> str:
    rcode, answers = answer_set
    if rcode != "NOERROR":
        return rcode
    if not answers:
        return "[empty]"
    return "[" + ", ".join(sorted(data for _, data in answers)) + "]"


def dns_stage(target: Target, observations: Sequence[Observation]) -> DNSStage:
    # Only the target's own name: lookups made for a redirect's new host
    # belong to the HTTP stage, which reports their failure itself.
    own = target.host.rstrip(".").lower()
    lookups = [
        (i, o)
        for i, o in enumerate(observations)
        if isinstance(o, DNSObservation) and o.query.rstrip(".").lower() == own
    ]
    if not lookups:
        return DNSStage(Stage(StageOutcome.ABSENT, Method.OK, "no DNS lookup"))
    return (
        _injection(lookups)
        or _bogons(target, lookups)
        or _failures(target, lookups)
        or _resolved(target, lookups)
    )


def _injection(lookups: list[tuple[int, DNSObservation]]) -> DNSStage | None:
    """A query answered by differing responses: an on-path injector raced
    the resolver (DESIGN.md: forged answers, sometimes two or three)."""
    found: list[tuple[int, str]] = []
    for i, lookup in lookups:
        variants = sorted({_describe(_answer_set(r)) for r in lookup.responses})
        if len(variants) > 1:
            found.append((i, f"{lookup.query} {lookup.rtype} got {' vs '.join(variants)}"))
    if not found:
        return None
    reason = "differing responses to one query: " + "; ".join(text for _, text in found)
    return _failed(Method.DNS_INJECTION, reason, [i for i, _ in found])


def _bogons(target: Target, lookups: list[tuple[int, DNSObservation]]) -> DNSStage | None:
    expected = parse_networks(target.expect.prefixes)
    found: dict[str, tuple[int, str]] = {}
    for i, lookup in lookups:
        for response in lookup.responses:
            for address in response_addresses(response):
                label = bogon_label(address, expected)
                if label is not None:
                    found.setdefault(str(address), (i, f"{address} ({label})"))
    if not found:
        return None
    reason = "answered with addresses no public service has: " + ", ".join(
        text for _, text in found.values()
    )
    return _failed(Method.DNS_BOGON, reason, [i for i, _ in found.values()])


def _failures(target: Target, lookups: list[tuple[int, DNSObservation]]) -> DNSStage | None:
    # A dns target asked for exactly these records, so every lookup must
    # answer; a connecting target needs only some address (a name with
    # A records and no AAAA is normal, RFC 8305 §3 queries both).
    failed = [(i, o, f) for i, o in lookups if (f := dns_failure(o)) is not None]
    if not failed or (target.kind is not TargetKind.DNS and len(failed) < len(lookups)):
        return None
    method = (
        Method.DNS_NXDOMAIN
        if any(f == Failure.DNS_NXDOMAIN for _, _, f in failed)
        else Method.DNS_FAILURE
    )
    reason = "; ".join(f"{o.query} {o.rtype}: {f}" for _, o, f in failed)
    return _failed(method, reason, [i for i, _, _ in failed])


def _resolved(target: Target, lookups: list[tuple[int, DNSObservation]]) -> DNSStage:
    resolved = [(i, o) for i, o in lookups if dns_failure(o) is None]
    addresses = list(dict.fromkeys(a for _, o in resolved for a in resolved_addresses(o)))
    if addresses:
        reason = f"resolved to {plural(len(addresses), 'address', 'addresses')}"
    else:
        answers = sum(len(o.responses[0].answers) for _, o in resolved)
        reason = f"resolved: {plural(answers, 'answer')}"
    stage = Stage(StageOutcome.PASSED, Method.OK, reason, tuple(i for i, _ in resolved))
    return DNSStage(stage, _unexpected(target, addresses))


def _unexpected(target: Target, addresses: list[Address]) -> str | None:
    expected = parse_networks(target.expect.prefixes)
    if not expected:
        return None
    outside = [str(a) for a in addresses if not within(a, expected)]
    if not outside:
        return None
    checked = f", checked {target.expect.checked}" if target.expect.checked else ""
    return (
        f"answers {', '.join(outside)} outside the expected prefixes "
        f"{', '.join(target.expect.prefixes)}{checked}"
    )


def _failed(method: Method, reason: str, evidence: list[int]) -> DNSStage:
    return DNSStage(Stage(StageOutcome.FAILED, method, reason, tuple(evidence)))
