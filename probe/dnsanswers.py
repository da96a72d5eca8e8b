"""The answer a stub resolver reads in a DNS response.

One rule for the live DNS check (``probe.net.dns``) and replay's decoder
(``probe.replay.dns``), which must record the same answers for the same
message.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from probe.model import DNSAnswer


def answer_chain(
    message: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> tuple[DNSAnswer, ...]:
    """The answer to (name, rdtype), following CNAMEs (RFC 1034 section 3.6.2).

    Records off the chain are not part of the answer a stub would use,
    so they are left out; a CNAME loop ends when a name repeats.
    """
    answers: list[DNSAnswer] = []
    seen: set[dns.name.Name] = set()
    while name not in seen:
        seen.add(name)
        rrset = message.get_rrset(message.answer, name, dns.rdataclass.IN, rdtype)
        if rrset is not None:
            kind = dns.rdatatype.to_text(rdtype)
            answers += [DNSAnswer(kind, rdata.to_text(), rrset.ttl) for rdata in rrset]
            break
        cname = message.get_rrset(message.answer, name, dns.rdataclass.IN,
                                  dns.rdatatype.CNAME)
        if cname is None:
            break
        target = cname[0].target
        answers.append(DNSAnswer("CNAME", target.to_text(), cname.ttl))
        name = target
    return tuple(answers)
