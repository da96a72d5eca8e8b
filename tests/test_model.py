"""probe.model's rules: what a DNS response amounts to.

The live check, replay and the classifier all judge a response with
``DNSResponse.stub_failure``; the last test gives replay and the
classifier the same responses and holds them to it (the live check's
answers to real responses are in tests/net/test_dns.py).
"""

from __future__ import annotations

import pytest

from probe.classify.dns import dns_failure
from probe.model import DNSAnswer, DNSObservation, DNSResponse, Failure
from probe.plan import CheckSettings
from probe.replay.observe import dns_observation
from probe.replay.records import DNSExchange
from probe.resolver import parse_resolver

A = DNSAnswer("A", "198.51.100.7", 300)
CNAME = DNSAnswer("CNAME", "other.test.", 300)

CASES = [
    ("NOERROR", (A,), "A", None),
    ("NOERROR", (CNAME, A), "A", None),
    ("NOERROR", (A,), "AAAA", Failure.DNS_NO_ANSWER),  # NODATA
    ("NOERROR", (CNAME,), "A", Failure.DNS_NO_ANSWER),
    ("NOERROR", (), "A", Failure.DNS_NO_ANSWER),
    ("NXDOMAIN", (), "A", Failure.DNS_NXDOMAIN),
    ("SERVFAIL", (), "A", Failure.DNS_SERVFAIL),
    ("REFUSED", (), "AAAA", Failure.DNS_REFUSED),
    ("FORMERR", (), "A", Failure.DNS_SERVER_MISBEHAVING),
    ("NOTIMP", (A,), "A", Failure.DNS_SERVER_MISBEHAVING),
    ("BADVERS", (), "A", Failure.DNS_SERVER_MISBEHAVING),
]


@pytest.mark.parametrize(("rcode", "answers", "asked", "failure"), CASES)
def test_a_response_fails_as_a_stub_resolver_says(
    rcode: str, answers: tuple[DNSAnswer, ...], asked: str, failure: Failure | None,
) -> None:
    assert DNSResponse(0.1, rcode, answers).stub_failure(asked) is failure


def test_case_does_not_matter() -> None:
    # Reports written by hand or by other tools may spell them in lower case.
    assert DNSResponse(0.1, "nxdomain", ()).stub_failure("a") is Failure.DNS_NXDOMAIN
    assert DNSResponse(0.1, "noerror", (DNSAnswer("a", "198.51.100.7", 1),)).stub_failure(
        "A") is None


@pytest.mark.parametrize(("rcode", "answers", "asked", "failure"), CASES)
def test_replay_and_the_classifier_judge_a_response_alike(
    rcode: str, answers: tuple[DNSAnswer, ...], asked: str, failure: Failure | None,
) -> None:
    response = DNSResponse(0.1, rcode, answers)
    exchange = DNSExchange("udp", "198.51.100.9", 40000, "198.51.100.53", 53, 1, "name.test",
                           asked, 0.0, (response,))
    settings = CheckSettings(resolver=parse_resolver("system"))
    assert dns_observation(exchange, settings, 10.0).failure is failure
    # The classifier judges an observation whose failure field was left empty.
    unjudged = DNSObservation("name.test", asked, "system", 0.0, 0.2, None, (response,))
    assert dns_failure(unjudged) == (failure.value if failure else None)
