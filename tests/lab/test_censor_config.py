"""The censor section's parser: the schema's values, its one-line errors, and the way back."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from probe_lab.censor.config import (
    Blackhole,
    CensorConfig,
    CensorConfigError,
    DNSInject,
    HostAction,
    HTTPHost,
    Loss,
    OpenVPNFingerprint,
    Partial,
    ProtocolDrop,
    Redirect,
    Selector,
    SNIReset,
    Throttle,
    UDPDrop,
    name_matches,
    parse_censor,
    to_data,
)

FULL = """\
censor:
  seed: 7
  dns_inject:
    - names: [www.facebook.com, "*.facebook.com"]
      answers: [198.51.100.66, [203.0.113.77, "2001:db8:66::1"]]
      probability: 0.5
  blackhole:
    - addresses: [203.0.113.30, "2001:db8:5::30", 203.0.113.64/28]
      names: [mmg.whatsapp.net]
      ports: [443]
      protocol: tcp
  partial: {names: [e1.whatsapp.net], drop: 1}
  sni_reset:
    - sni: [mmg.whatsapp.net, "*.cdn.whatsapp.net"]
      probability: 0.75
      residual: 90
  http_host:
    - hosts: [www.facebook.com]
      action: blockpage
  throttle:
    - rate: 256kbit
      names: [mmg.whatsapp.net]
    - rate: 2mbps
  loss: {percent: 10}
  udp_drop:
    - {ports: [1194, 51820]}
    - {except_ports: [53], addresses: [203.0.113.0/24]}
  redirect:
    - names: [web.whatsapp.com]
      ports: [443]
      to: [203.0.113.99, "2001:db8:5::99"]
      to_port: 8443
  openvpn_fingerprint:
    - {}
    - names: [vpn.example.net]
      ports: [1194, 443]
      protocol: udp
      probability: 0.5
      residual: 120
  gre_drop: true
  esp_drop: {addresses: [203.0.113.50]}
"""


def censor_node(text: str) -> yaml.Node:
    root = yaml.compose(text)
    assert isinstance(root, yaml.MappingNode)
    return root.value[0][1]


def test_the_full_example_parses_to_these_rules() -> None:
    config = parse_censor(yaml.safe_load(FULL)["censor"], "full.yaml")
    assert config == CensorConfig(
        seed=7,
        dns_inject=(
            DNSInject(
                ("www.facebook.com", "*.facebook.com"),
                (("198.51.100.66",), ("203.0.113.77", "2001:db8:66::1")),
                probability=0.5,
            ),
        ),
        blackhole=(
            Blackhole(
                Selector(
                    ("203.0.113.30", "2001:db8:5::30", "203.0.113.64/28"),
                    ("mmg.whatsapp.net",),
                    (443,),
                ),
                "tcp",
            ),
        ),
        partial=(Partial(("e1.whatsapp.net",), 1),),
        sni_reset=(
            SNIReset(("mmg.whatsapp.net", "*.cdn.whatsapp.net"), probability=0.75, residual=90.0),
        ),
        http_host=(HTTPHost(("www.facebook.com",), HostAction.BLOCKPAGE),),
        throttle=(
            Throttle(256_000, Selector(names=("mmg.whatsapp.net",))),
            Throttle(16_000_000),  # 2 megabytes a second, as tc reads "mbps"
        ),
        loss=(Loss(10),),
        udp_drop=(
            UDPDrop(Selector(ports=(1194, 51820))),
            UDPDrop(Selector(addresses=("203.0.113.0/24",)), except_ports=(53,)),
        ),
        redirect=(
            Redirect(
                Selector(names=("web.whatsapp.com",), ports=(443,)),
                ("203.0.113.99", "2001:db8:5::99"),
                8443,
            ),
        ),
        openvpn_fingerprint=(
            OpenVPNFingerprint(),  # every server and port, TCP and UDP
            OpenVPNFingerprint(
                Selector(names=("vpn.example.net",), ports=(1194, 443)), "udp", 0.5, 120.0
            ),
        ),
        gre_drop=(ProtocolDrop(),),
        esp_drop=(ProtocolDrop(Selector(addresses=("203.0.113.50",))),),
    )
    assert config.needs_daemon


def test_a_yaml_node_parses_like_plain_data() -> None:
    assert parse_censor(censor_node(FULL), "f.yaml") == parse_censor(
        yaml.safe_load(FULL)["censor"], "f.yaml"
    )


def test_an_empty_section_is_a_censor_that_does_nothing() -> None:
    assert parse_censor(None, "x") == parse_censor({}, "x") == CensorConfig()
    assert not CensorConfig().needs_daemon
    assert not parse_censor({"blackhole": {"addresses": ["203.0.113.9"]}}, "x").needs_daemon
    assert parse_censor({"openvpn_fingerprint": True}, "x").needs_daemon


def test_true_is_one_rule_with_every_default_and_false_is_none() -> None:
    config = parse_censor({"gre_drop": True, "esp_drop": False, "openvpn_fingerprint": True}, "x")
    assert config == CensorConfig(gre_drop=(ProtocolDrop(),),
                                  openvpn_fingerprint=(OpenVPNFingerprint(),))  # fmt: skip
    assert to_data(config) == {"gre_drop": [{}], "openvpn_fingerprint": [{"protocol": "any",
                               "probability": 1.0, "residual": 0.0}]}  # fmt: skip
    assert parse_censor(to_data(config), "again") == config


def test_to_data_goes_back_to_an_equal_config() -> None:
    config = parse_censor(yaml.safe_load(FULL)["censor"], "full.yaml")
    assert parse_censor(to_data(config), "again") == config
    assert to_data(CensorConfig()) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "censor:\n  sni_reset:\n    - sni: [a.example]\n      probability: 2\n",
            "s.yaml:4:20: censor.sni_reset[0].probability: 2 is not a probability (0 to 1)",
        ),
        (
            "censor:\n  blackhole:\n    - addresses: [192.0.2.1]\n",
            "s.yaml:3:19: censor.blackhole[0].addresses[0]: 192.0.2.1 is outside the lab's ranges"
            " (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)",
        ),
        (
            "censor:\n  dnsinject: []\n",
            "s.yaml:2:14: censor.dnsinject: unknown behaviour (known: seed, dns_inject, blackhole,"
            " partial, sni_reset, http_host, throttle, loss, udp_drop, redirect,"
            " openvpn_fingerprint, gre_drop, esp_drop)",
        ),
        (
            "censor:\n  http_host: {hosts: [a.example], action: reset}\n",
            "s.yaml:2:43: censor.http_host[0].action: 'reset' is not one of rst, drop, blockpage",
        ),
        (
            "censor:\n  throttle:\n    rate: fast\n",
            "s.yaml:3:11: censor.throttle[0].rate: 'fast' is not a rate like 256kbit or 1mbps",
        ),
        (
            "censor:\n  udp_drop: {addresses: [203.0.113.9]}\n",
            "s.yaml:2:13: censor.udp_drop[0].ports: is required",
        ),
        (
            "censor:\n  udp_drop:\n    - ports: [1194]\n      except_ports: [53]\n",
            "s.yaml:4:21: censor.udp_drop[0].except_ports: give ports or except_ports, not both",
        ),
        (
            "censor:\n  openvpn_fingerprint:\n    - protocol: sctp\n",
            "s.yaml:3:17: censor.openvpn_fingerprint[0].protocol: 'sctp' is not one of tcp, udp, any",
        ),
        (
            "censor:\n  openvpn_fingerprint: {residual: 4000}\n",
            (
                "s.yaml:2:35: censor.openvpn_fingerprint[0].residual: 4000 is not a number of"
                " seconds (0 to 3600)"
            ),
        ),
        (
            "censor:\n  gre_drop: {ports: [1723]}\n",
            "s.yaml:2:21: censor.gre_drop[0].ports: unknown key (known: addresses, names)",
        ),
        (
            "censor:\n  esp_drop: yes please\n",
            (
                "s.yaml:2:13: censor.esp_drop: must be a list of rules (or one rule as a mapping,"
                " or true)"
            ),
        ),
    ],
)
def test_errors_name_the_file_position_and_key(text: str, expected: str) -> None:
    with pytest.raises(CensorConfigError) as caught:
        parse_censor(censor_node(text), "s.yaml")
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "censor: must be a mapping of behaviours"),
        ({"seed": "x"}, "censor.seed: must be an integer"),
        ({"loss": 5}, "censor.loss: must be a list of rules (or one rule as a mapping, or true)"),
        ({"loss": [{"percent": 0}]}, "censor.loss[0].percent: 0 is not an integer from 1 to 100"),
        (
            {"loss": {"percent": 5, "rate": 1}},
            "censor.loss[0].rate: unknown key (known: percent, addresses, names, ports)",
        ),  # fmt: skip
        (
            {"blackhole": {"protocol": "udp"}},
            "censor.blackhole[0].addresses: a blackhole needs addresses, names or ports",
        ),  # fmt: skip
        (
            {"openvpn_fingerprint": {"addresses": ["10.0.0.1"]}},
            (
                "censor.openvpn_fingerprint[0].addresses[0]: 10.0.0.1 is outside the lab's"
                " ranges (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)"
            ),
        ),
        ({"gre_drop": True, "udp_drop": True}, "censor.udp_drop[0].ports: is required"),
        (
            {"blackhole": {"addresses": ["203.0.113.1/16"]}},
            "censor.blackhole[0].addresses[0]: '203.0.113.1/16' is not an IP address or network",
        ),
        (
            {"blackhole": {"names": ["no_such name"]}},
            "censor.blackhole[0].names[0]: 'no_such name' is not a host name",
        ),
        (
            {"sni_reset": {"sni": ["*.*.x"]}},
            "censor.sni_reset[0].sni[0]: '*.*.x' is not a host name (or \"*.name\")",
        ),
        ({"sni_reset": {"sni": []}}, "censor.sni_reset[0].sni: must not be empty"),
        (
            {"sni_reset": {"sni": ["a.b"], "ports": [0]}},
            "censor.sni_reset[0].ports[0]: 0 is not a port (1-65535)",
        ),
        (
            {"sni_reset": {"sni": ["a.b"], "residual": -1}},
            "censor.sni_reset[0].residual: -1 is not a number of seconds (0 to 3600)",
        ),
        (
            {"dns_inject": {"names": ["a.b"], "answers": ["192.0.2.7"]}},
            "censor.dns_inject[0].answers[0][0]: '192.0.2.7' is not a usable address",
        ),
        ({"throttle": {"rate": "1kbit"}}, "censor.throttle[0].rate: '1kbit' is below 8kbit"),
        (
            {
                "redirect": {
                    "addresses": ["203.0.113.9"],
                    "ports": [443],
                    "to": ["203.0.113.1", "203.0.113.2"],
                }
            },
            "censor.redirect[0].to: give at most one address per IP version",
        ),  # fmt: skip
    ],
)
def test_plain_data_errors_name_the_key(data: Any, expected: str) -> None:
    with pytest.raises(CensorConfigError) as caught:
        parse_censor(data, "scenario.yaml")
    assert str(caught.value) == f"scenario.yaml: {expected}"


def test_errors_carry_file_line_and_column_and_a_bad_tag_is_one_of_them() -> None:
    with pytest.raises(CensorConfigError) as caught:
        parse_censor(censor_node("censor:\n  loss: {percent: 0}\n"), "s.yaml")
    assert (caught.value.file, caught.value.line, caught.value.column) == ("s.yaml", 2, 19)
    # A value its tag does not fit: refused by probe.yamldoc, the reader of every YAML input.
    with pytest.raises(CensorConfigError, match=r"^s.yaml: censor: a value does not fit its tag$"):
        parse_censor(censor_node("censor:\n  seed: !!int 0b\n"), "s.yaml")


def test_aliases_are_never_walked_one_path_at_a_time() -> None:
    # 10**9 paths through shared nodes: positions are looked up for the one
    # path an error names, so this fails at once at the unknown behaviour.
    names = "abcdefghij"
    text = "censor:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"  {new}: &{new} [{', '.join([f'*{old}'] * 10)}]\n" for old, new in pairwise(names)
    )
    with pytest.raises(CensorConfigError, match=r"^s.yaml:2:6: censor.a: unknown behaviour"):
        parse_censor(censor_node(text), "s.yaml")


def test_a_key_with_a_line_break_stays_on_one_line() -> None:
    with pytest.raises(CensorConfigError, match=r"^x: censor\.'\\n': unknown behaviour"):
        parse_censor({"\n": None}, "x")


def test_forged_answers_may_lie_outside_the_lab_but_rules_may_not() -> None:
    config = parse_censor({"dns_inject": {"names": ["a.b"], "answers": ["10.10.34.35"]}}, "x")
    assert config.dns_inject[0].answers == (("10.10.34.35",),)


def test_a_blackhole_of_ports_alone_and_udp_but_some_ports() -> None:
    config = parse_censor(
        {"blackhole": {"ports": [1723], "protocol": "tcp"}, "udp_drop": {"except_ports": [53]}}, "x"
    )
    assert config.blackhole == (Blackhole(Selector(ports=(1723,)), "tcp"),)
    assert config.udp_drop == (UDPDrop(Selector(), except_ports=(53,)),)


def test_rates_in_tc_units() -> None:
    rates = {"256kbit": 256_000, "1.5mbit": 1_500_000, "100kbps": 800_000, "1gbit": 10**9}
    for text, bits in rates.items():
        assert parse_censor({"throttle": {"rate": text}}, "x").throttle[0].rate == bits


def test_name_patterns() -> None:
    assert name_matches("WWW.Facebook.com.", ("www.facebook.com",))
    assert name_matches("a.b.facebook.com", ("*.facebook.com",))
    assert not name_matches("facebook.com", ("*.facebook.com",))
    assert not name_matches("notfacebook.com", ("*.facebook.com",))
    assert not name_matches("www.facebook.com.evil", ("www.facebook.com",))


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["seed", "sni_reset", "sni", "ports", "blackhole", "addresses",
                         "names", "rate", "throttle", "answers", "dns_inject", "to", "redirect",
                         "openvpn_fingerprint", "protocol", "residual", "gre_drop", "udp_drop",
                         "except_ports"])
        | st.text(max_size=8),
        children,
        max_size=4,
    ),
    max_leaves=20,
))  # fmt: skip
def test_any_data_gives_a_config_or_one_line_error(data: Any) -> None:
    try:
        parse_censor(data, "fuzz.yaml")
    except CensorConfigError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.yaml: censor")
