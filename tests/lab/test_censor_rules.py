"""The ruleset builder: which nftables lines and tc commands each behaviour becomes."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from probe_lab.censor.config import OpenVPNFingerprint, Selector, parse_censor
from probe_lab.censor.rules import (
    ZoneError,
    inspected_ports,
    resolve_names,
    ruleset,
    tc_commands,
    tc_teardown,
)


@dataclass(frozen=True)
class FakeZone:
    addresses: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "mmg.whatsapp.net": ("203.0.113.30", "2001:db8:5::30"),
            "e1.whatsapp.net": ("203.0.113.40", "203.0.113.41", "2001:db8:5::40", "2001:db8:5::41"),
            "web.whatsapp.com": ("203.0.113.20", "2001:db8:5::20"),
            "vpn.example.net": ("203.0.113.60", "2001:db8:5::60"),
        }
    )


ZONE = FakeZone()


def rules(censor: dict[str, Any]) -> list[str]:
    """The ruleset's rule lines, without the table's frame."""
    text = ruleset(parse_censor(censor, "t"), ZONE)
    return [line.strip() for line in text.splitlines()]


def chain(censor: dict[str, Any], name: str) -> list[str]:
    """A chain's rules, without its hook line."""
    lines = rules(censor)
    start = lines.index(f"chain {name} {{")
    end = lines.index("}", start)
    return [line for line in lines[start + 1 : end] if not line.startswith("type ")]


RESIDUAL = [
    "ip saddr . ip daddr . meta l4proto . th dport @residual4 drop",
    "ip6 saddr . ip6 daddr . meta l4proto . th dport @residual6 drop",
]


def test_an_empty_censor_has_only_the_residual_sets() -> None:
    assert chain({}, "drops") == RESIDUAL
    assert chain({}, "forward") == ["jump drops"]
    assert (
        "set residual4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags timeout; }"
        in rules({})
    )
    hooks = ("chain prerouting", "chain postrouting", "chain output")
    assert not any(line.startswith(hooks) for line in rules({}))
    assert tc_commands(parse_censor({}, "t")) == []


def test_blackhole_resolves_names_and_splits_families() -> None:
    censor = {"blackhole": {"names": ["mmg.whatsapp.net"], "addresses": ["203.0.113.64/28"],
                            "ports": [443, 5222], "protocol": "tcp"}}  # fmt: skip
    assert chain(censor, "drops")[2:] == [
        "ip daddr { 203.0.113.64/28, 203.0.113.30 } tcp dport { 443, 5222 } drop",
        "ip6 daddr { 2001:db8:5::30 } tcp dport { 443, 5222 } drop",
    ]
    every = {"blackhole": {"addresses": ["203.0.113.9"], "ports": [53]}}
    assert chain(every, "drops")[2:] == [
        "ip daddr { 203.0.113.9 } meta l4proto { tcp, udp } th dport { 53 } drop"
    ]


def test_partial_drops_the_first_addresses_of_each_family() -> None:
    assert chain({"partial": {"names": ["e1.whatsapp.net"], "drop": 1}}, "drops")[2:] == [
        "ip daddr { 203.0.113.40 } drop",
        "ip6 daddr { 2001:db8:5::40 } drop",
    ]


def test_udp_drop_and_loss() -> None:
    censor = {"udp_drop": {"ports": [1194]}, "loss": [{"percent": 5},
              {"percent": 20, "addresses": ["203.0.113.7"]}]}  # fmt: skip
    assert chain(censor, "drops")[2:] == [
        "udp dport { 1194 } drop",
        "numgen random mod 100 < 5 drop",
        "ip daddr { 203.0.113.7 } numgen random mod 100 < 20 drop",
        "ip saddr { 203.0.113.7 } numgen random mod 100 < 20 drop",
    ]


def test_triggers_hand_payload_on_their_ports_to_the_inspector() -> None:
    censor = {"sni_reset": {"sni": ["a.example"]}, "http_host": {"hosts": ["b.example"]}}
    assert inspected_ports(parse_censor(censor, "t")) == (80, 443)
    handoff = chain(censor, "forward")[1:]
    assert len(handoff) == 2 * 11  # every TCP data offset, both families
    assert handoff[0] == (
        'iifname "cl0" ip hdrlength 5 tcp dport { 80, 443 } tcp doff 5 meta length > 40 drop'
    )
    assert handoff[-1] == (
        'iifname "cl0" ip6 nexthdr tcp tcp dport { 80, 443 } tcp doff 15 meta length > 100 drop'
    )
    # DNS injection races rather than stops: nothing is handed off for it.
    injector = {"dns_inject": {"names": ["a.b"], "answers": ["1.2.3.4"]}}
    assert chain(injector, "forward") == ["jump drops"]
    # What the inspector relays meets the same drops on its way out.
    assert chain(injector, "output") == ["meta mark 0x706c jump drops"]


def test_udp_drop_of_every_port_but_some() -> None:
    # Answers come back *from* the spared port: judged by the flow's first packet.
    censor = {"udp_drop": [{"except_ports": [53]},
                           {"except_ports": [53, 123], "names": ["web.whatsapp.com"]}]}  # fmt: skip
    assert chain(censor, "drops")[2:] == [
        "meta l4proto udp ct original proto-dst != { 53 } drop",
        "ip daddr { 203.0.113.20 } meta l4proto udp ct original proto-dst != { 53, 123 } drop",
        "ip6 daddr { 2001:db8:5::20 } meta l4proto udp ct original proto-dst != { 53, 123 } drop",
    ]


def test_a_blackhole_of_a_port_alone() -> None:
    censor = {"blackhole": {"ports": [1723], "protocol": "tcp"}}
    assert chain(censor, "drops")[2:] == ["tcp dport { 1723 } drop"]


def test_gre_and_esp_drops_both_ways() -> None:
    censor = {"gre_drop": True, "esp_drop": {"names": ["vpn.example.net"]}}
    assert chain(censor, "drops")[2:] == [
        "meta l4proto 47 drop",
        "ip daddr { 203.0.113.60 } meta l4proto 50 drop",
        "ip6 daddr { 2001:db8:5::60 } meta l4proto 50 drop",
        "ip saddr { 203.0.113.60 } meta l4proto 50 drop",
        "ip6 saddr { 2001:db8:5::60 } meta l4proto 50 drop",
    ]
    assert "chain output {" not in rules(censor)  # no inspector, nothing relayed


def test_openvpn_fingerprint_hands_tcp_payload_and_reset_like_udp_to_the_inspector() -> None:
    every = {"openvpn_fingerprint": True}
    assert inspected_ports(parse_censor(every, "t")) is None  # every TCP port
    forward = chain(every, "forward")
    assert forward[1] == 'iifname "cl0" ip hdrlength 5 tcp doff 5 meta length > 40 drop'
    # UDP: only datagrams whose first byte is a client reset's (opcode 7 or 10, key id 0).
    assert forward[-1] == 'iifname "cl0" meta l4proto udp @th,64,8 { 0x38, 0x50 } drop'
    assert len(forward) == 1 + 22 + 1
    assert chain(every, "output") == ["meta mark 0x706c jump drops"]

    some = {"openvpn_fingerprint": {"names": ["vpn.example.net"], "ports": [1194],
                                    "protocol": "udp"},
            "sni_reset": {"sni": ["a.example"]}}  # fmt: skip
    assert inspected_ports(parse_censor(some, "t")) == (443,)  # UDP only: no TCP hand-off
    assert chain(some, "forward")[-2:] == [
        'iifname "cl0" ip daddr { 203.0.113.60 } udp dport { 1194 } @th,64,8 { 0x38, 0x50 } drop',
        (
            'iifname "cl0" ip6 daddr { 2001:db8:5::60 } udp dport { 1194 } @th,64,8 { 0x38, 0x50 }'
            " drop"
        ),
    ]
    tcp = {"openvpn_fingerprint": {"ports": [1194, 443], "protocol": "tcp"}}
    assert inspected_ports(parse_censor(tcp, "t")) == (443, 1194)
    assert not any("@th" in line for line in chain(tcp, "forward"))


def test_the_inspector_gets_addresses_instead_of_names() -> None:
    config = parse_censor({"openvpn_fingerprint": {"names": ["vpn.example.net"],
                                                   "addresses": ["203.0.113.61"]}}, "t")  # fmt: skip
    assert resolve_names(config, ZONE).openvpn_fingerprint == (
        OpenVPNFingerprint(Selector(("203.0.113.61", "203.0.113.60", "2001:db8:5::60"))),
    )


def test_redirect_in_prerouting() -> None:
    censor = {"redirect": {"names": ["web.whatsapp.com"], "ports": [443], "to": ["203.0.113.99"],
                           "to_port": 8443}}  # fmt: skip
    expected = [
        "ip daddr { 203.0.113.20 } meta l4proto { tcp, udp } th dport 443 "
        "dnat ip to 203.0.113.99:8443"
    ]  # no IPv6 target: the name's IPv6 address is left alone
    assert chain(censor, "prerouting") == expected


def test_throttle_marks_both_directions_and_builds_htb_classes() -> None:
    censor = {"throttle": [{"rate": "256kbit", "names": ["mmg.whatsapp.net"]}, {"rate": "1mbit"}]}
    assert chain(censor, "postrouting") == [
        "ip daddr { 203.0.113.30 } meta priority set 1:10 accept",
        "ip6 daddr { 2001:db8:5::30 } meta priority set 1:10 accept",
        "ip saddr { 203.0.113.30 } meta priority set 1:10 accept",
        "ip6 saddr { 2001:db8:5::30 } meta priority set 1:10 accept",
        "meta priority set 1:11 accept",
    ]
    config = parse_censor(censor, "t")
    commands = [" ".join(argv) for argv in tc_commands(config)]
    assert commands[:5] == [
        "tc qdisc replace dev cl0 root handle 1: htb",
        "tc class add dev cl0 parent 1: classid 1:10 htb rate 256000bit ceil 256000bit"
        " quantum 1514",
        "tc qdisc add dev cl0 parent 1:10 pfifo limit 10",
        "tc class add dev cl0 parent 1: classid 1:11 htb rate 1000000bit ceil 1000000bit"
        " quantum 1514",
        "tc qdisc add dev cl0 parent 1:11 pfifo limit 41",
    ]
    assert commands[5:] == [c.replace("cl0", "sv0") for c in commands[:5]]
    assert tc_teardown(config) == [
        ["tc", "qdisc", "del", "dev", "cl0", "root"],
        ["tc", "qdisc", "del", "dev", "sv0", "root"],
    ]


def test_a_name_outside_the_zone_is_a_one_line_error() -> None:
    with pytest.raises(ZoneError, match="^censor names nowhere.example, which has no address"):
        ruleset(parse_censor({"blackhole": {"names": ["nowhere.example"]}}, "t"), ZONE)


@pytest.mark.usefixtures("lab_host")  # root and nft, or skip (fail in CI)
def test_nft_accepts_every_behaviour_at_once() -> None:
    censor = {
        "dns_inject": {"names": ["*.facebook.com"], "answers": ["198.51.100.66"]},
        "blackhole": [{"names": ["mmg.whatsapp.net"], "addresses": ["203.0.113.64/28"]},
                      {"addresses": ["203.0.113.99"], "ports": [80], "protocol": "udp"},
                      {"ports": [1723], "protocol": "tcp"}],
        "partial": {"names": ["e1.whatsapp.net"], "drop": 1, "ports": [5222]},
        "sni_reset": {"sni": ["mmg.whatsapp.net"], "residual": 5},
        "http_host": {"hosts": ["www.facebook.com"], "ports": [80, 8080]},
        "throttle": [{"rate": "256kbit", "names": ["mmg.whatsapp.net"], "ports": [443]}],
        "loss": {"percent": 10, "names": ["web.whatsapp.com"]},
        "udp_drop": [{"ports": [1194, 51820], "addresses": ["2001:db8:5::30"]},
                     {"except_ports": [53], "names": ["mmg.whatsapp.net"]}],
        "redirect": {"names": ["web.whatsapp.com"], "ports": [443],
                     "to": ["203.0.113.99", "2001:db8:5::99"]},
        "openvpn_fingerprint": [{"names": ["vpn.example.net"], "ports": [1194], "residual": 9},
                                {"protocol": "udp"}],
        "gre_drop": {"addresses": ["203.0.113.64/28", "2001:db8:5::/64"]},
        "esp_drop": True,
    }  # fmt: skip
    text = ruleset(parse_censor(censor, "t"), ZONE)
    # -c: parse and check against the kernel without committing, in a
    # throwaway network namespace so nothing on this machine changes.
    done = subprocess.run(["unshare", "--net", "nft", "-c", "-f", "-"], input=text,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
