"""probe.lists.loader: schema errors with exact positions, defaults, ids, prefix
tables, controls, and a fuzz proof that nothing but TestListError ever comes out."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from list_samples import CONTROLS_FILE, SHIPPED, VPN_LIST, write

from probe.lists import TestListError, default_controls_path, load_testlist, loader
from probe.model import Expectations, TargetKind

ListError = loader.TestListError

# Eight lines; targets start on line 9, in a list indented six spaces.
HEAD = """\
name: t
version: "1"
updated: 2026-11-23
controls: [{kind: dns, host: www.example.com}]
features:
  - id: f
    name: F
    targets:
"""
TARGET_LINE = 9


def error_of(path: Path) -> ListError:
    with pytest.raises(ListError) as info:
        load_testlist(path)
    return info.value


def load_targets(tmp_path: Path, *lines: str):
    text = HEAD + "".join(f"      - {line}\n" for line in lines)
    return load_testlist(write(tmp_path, text)).features[0].targets


# --------------------------------------------------------------------------
# Errors inside a target: (target text, token the error must point at, message)

TARGET_ERRORS = [
    ("{kind: tcp, host: a.example, port: 1, colour: red}", "colour",
     "'colour' is not a key of a tcp target (allowed: kind, id, expect, host, port)"),
    ('{kind: tcp, host: a.example, port: 1, url: "http://a.example/"}', "url:",
     "'url' does not apply to a tcp target (allowed: kind, id, expect, host, port)"),
    ("{kind: tls, host: a.example, method: GET}", "method", "'method' does not apply to a tls target"),
    ("{kind: tcp, host: a.example}", "{", "a tcp target is missing the required key 'port'"),
    ("{kind: https}", "{", "a https target is missing the required key 'url'"),
    ("{host: a.example}", "{", "a target is missing the required key 'kind' (one of: dns, tcp, tls, http, https, openvpn, wireguard, ikev2, pptp, l2tp, sstp)"),
    ("{kind: udp, host: a.example}", "udp", "unknown target kind 'udp' (allowed: dns, tcp, tls, http, https, openvpn, wireguard, ikev2, pptp, l2tp, sstp)"),
    ("{kind: [tcp], host: a.example}", "[tcp]", "'kind' must be a string, not a list"),
    ('{kind: tcp, host: a.example, port: "443"}', '"443"', "'port' must be an integer, not a string"),
    ("{kind: tcp, host: a.example, port: 0}", "0}", "'port' must be between 1 and 65535, not '0'"),
    ("{kind: tcp, host: a.example, port: 65536}", "65536", "'port' must be between 1 and 65535, not '65536'"),
    ("{kind: tls, host: a.example, port: 1.5}", "1.5", "'port' must be an integer, not a number"),
    ("{kind: tcp, host: 127.0.0.1, port: 1}", "127", "'host': use a host name, not an IP literal ('127.0.0.1')"),
    ('{kind: dns, host: "2001:db8::1"}', '"2001', "use a host name, not an IP literal"),
    ('{kind: dns, host: "127.1"}', '"127.1"', "use a host name, not an IP literal"),
    ("{kind: dns, host: 127.1}", "127.1", "'host' must be a string, not a number (put it in quotes)"),
    ("{kind: dns, host: 0x7f.1}", "0x7f", "use a host name, not an IP literal ('0x7f.1')"),
    ("{kind: dns, host: www.example.123}", "www", "use a host name, not an IP literal"),
    ('{kind: dns, host: "a..example"}', '"a..', "'host': 'a..example' is not a valid host name"),
    ("{kind: dns, host: -a.example}", "-a", "is not a valid host name"),
    ("{kind: dns, host: a.example, rtype: AXFR}", "AXFR",
     "'rtype' must be one of A, AAAA, CNAME, HTTPS, MX, NS, SOA, SVCB, TXT, not 'AXFR'"),
    ('{kind: https, url: "ftp://a.example/"}', '"ftp', "must start with http:// or https://"),
    ('{kind: https, url: "http://a.example/"}', '"http', "a https target needs a https:// URL, not 'http://a.example/'"),
    ('{kind: https, url: "https:///path"}', '"https', "'url' 'https:///path' has no host"),
    ('{kind: https, url: "https://[::1]/"}', '"https', "'url': use a host name, not an IP literal ('::1')"),
    ('{kind: http, url: "http://10.1.2.3:8080/"}', '"http', "use a host name, not an IP literal ('10.1.2.3')"),
    ('{kind: https, url: "https://a.example:99999/"}', '"https', "is not a valid URL"),
    ('{kind: https, url: "https://a.example:0/"}', '"https', "port must be between 1 and 65535"),
    ('{kind: https, url: "https://u:p@a.example/"}', '"https', "must not carry credentials"),
    ('{kind: https, url: "https://a.example/a b"}', '"https', "must not contain spaces"),
    ('{kind: https, url: "https://a.example/", method: POST}', "POST",
     "'method' must be one of GET, HEAD, OPTIONS, not 'POST'"),
    ("{kind: wireguard, host: a.example}", "{", "a wireguard target is missing the required key 'key'"),
    ("{kind: wireguard, host: a.example, key: nope}", "nope",
     "unknown key 'nope' (defined in 'keys': none)"),
    ("{kind: openvpn, host: a.example, transport: sctp}", "sctp",
     "'transport' must be one of udp, tcp, not 'sctp'"),
    ("{kind: openvpn, host: a.example, key_direction: 1}", "1",
     "'key_direction' needs 'control: tls-auth' or 'control: tls-crypt'"),
    ("{kind: ikev2, host: a.example, transport: tcp}", "transport",
     "'transport' does not apply to a ikev2 target"),
    ('{kind: https, url: "https://a.example/", throughput: "yes"}', '"yes"',
     "'throughput' must be true or false, not a string"),
    ("{kind: tls, host: a.example, throughput: true}", "throughput",
     "'throughput' does not apply to a tls target"),
    ("{kind: dns, host: a.example, expect: {status: [200]}}", "status",
     "'status' does not apply to the 'expect' of a dns target (allowed: prefixes, asn, checked)"),
    ("{kind: dns, host: a.example, expect: {colour: red}}", "colour", "'colour' is not a key of the 'expect'"),
    ("{kind: dns, host: a.example, expect: [1]}", "[1]", "'expect' must be a mapping, not a list"),
    ("{kind: dns, host: a.example, expect: {prefixes: [10.0.0.1/8]}}", "10.0.0.1",
     "bad CIDR prefix '10.0.0.1/8': 10.0.0.1/8 has host bits set"),
    ("{kind: dns, host: a.example, expect: {prefixes: [10.0.0.0/33]}}", "10.0.0.0", "bad CIDR prefix '10.0.0.0/33'"),
    ("{kind: dns, host: a.example, expect: {prefixes: [10.0.0.0]}}", "10.0.0.0",
     "bad CIDR prefix '10.0.0.0': write it as ADDRESS/LENGTH"),
    ("{kind: dns, host: a.example, expect: {prefixes: []}}", "[]", "'prefixes' must not be empty"),
    ("{kind: dns, host: a.example, expect: {prefixes: nope}}", "nope", "unknown prefix table 'nope' (defined: none)"),
    ("{kind: dns, host: a.example, expect: {checked: 2026-02-30}}", "2026-02-30",
     "'checked' must be a date written YYYY-MM-DD, not '2026-02-30'"),
    ("{kind: dns, host: a.example, expect: {checked: 30/01/2026}}", "30/01", "must be a date written YYYY-MM-DD"),
    ("{kind: dns, host: a.example, expect: {asn: 0}}", "0}", "'asn' must be between 1 and 4294967295, not '0'"),
    ('{kind: https, url: "https://a.example/", expect: {status: [200, 700]}}', "700",
     "an HTTP status must be between 100 and 599, not '700'"),
    ('{kind: https, url: "https://a.example/", expect: {status: 200}}', "200", "'status' must be a list, not an integer"),
    ('{kind: https, url: "https://a.example/", expect: {body_contains: ""}}', '""', "'body_contains' must not be empty"),
    ("{kind: tls, host: a.example, expect: {certificate_name: 10.0.0.1}}", "10.0.0.1",
     "'certificate_name': use a host name, not an IP literal"),
    ("{kind: tls, host: a.example, sni: 10.0.0.1}", "10.0.0.1", "'sni': use a host name, not an IP literal"),
    ("{kind: tls, host: a.example, alpn: h2}", "h2", "'alpn' must be a list, not a string"),
    ('{kind: tls, host: a.example, alpn: [h2, ""]}', '""', "an 'alpn' entry must not be empty"),
    ('{kind: dns, host: a.example, id: "a b"}', '"a b"', "'id' 'a b' must be printable ASCII without spaces"),
    ("{kind: dns, host: a.example, id: control:x}", "control:x", "the prefix 'control:' is kept for controls"),
    ("{kind: dns, host: a.example, host: b.example}", "host: b", "duplicate key 'host' (first at line 9, column 21)"),
    ("{kind: dns, host: a.example, 5: x}", "5:", "keys must be strings, not an integer"),
    ("just-a-string", "just", "a target must be a mapping, not a string"),
    ("{kind: dns, host: !!binary aGVsbG8=}", "!!binary", "'host' must be a string, not a value tagged"),
]


@pytest.mark.parametrize(("target", "token", "message"), TARGET_ERRORS)
def test_target_errors_name_file_line_and_column(tmp_path: Path, target: str, token: str, message: str) -> None:
    path = write(tmp_path, HEAD + f"      - {target}\n")
    error = error_of(path)
    line_text = f"      - {target}"
    assert (error.path, error.line, error.column) == (str(path), TARGET_LINE, line_text.rindex(token) + 1)
    assert message in error.message
    assert str(error) == f"{path}:{TARGET_LINE}:{line_text.rindex(token) + 1}: {error.message}"


def test_error_is_one_line_even_when_the_value_holds_newlines(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, HEAD + '      - {kind: dns, host: "bad\\nname"}\n'))
    assert "\n" not in str(error)
    assert str(error).endswith("'host': 'bad\\nname' is not a valid host name")


def test_block_style_target_points_at_the_offending_key(tmp_path: Path) -> None:
    text = HEAD + "      - kind: tcp\n        host: a.example\n        port: 1\n        url: x\n"
    error = error_of(write(tmp_path, text))
    assert (error.line, error.column) == (12, 9)
    assert error.message.startswith("'url' does not apply to a tcp target")


def test_missing_key_points_at_the_block_mapping(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, HEAD + "      - kind: tcp\n        host: a.example\n"))
    assert (error.line, error.column, error.message) == (9, 9, "a tcp target is missing the required key 'port'")


def test_duplicate_derived_target_id(tmp_path: Path) -> None:
    text = HEAD + "      - {kind: tcp, host: a.example, port: 1}\n      - {kind: tcp, host: A.example, port: 1}\n"
    error = error_of(write(tmp_path, text))
    assert (error.line, error.column) == (10, 9)
    assert error.message == (
        "duplicate target id 'tcp://a.example:1' (first at line 9, column 9); give one of them an explicit 'id'"
    )


def test_duplicate_explicit_target_id_across_features(tmp_path: Path) -> None:
    text = HEAD + (
        "      - {kind: dns, host: a.example, id: same}\n"
        "  - id: g\n"
        "    name: G\n"
        "    targets:\n"
        "      - {kind: dns, host: b.example, id: same}\n"
    )
    error = error_of(write(tmp_path, text))
    assert (error.line, error.column) == (13, 42)
    assert error.message.startswith("duplicate target id 'same' (first at line 9, column 42)")


def test_two_tls_targets_differing_in_sni_do_not_collide(tmp_path: Path) -> None:
    plain, fronted = load_targets(
        tmp_path, "{kind: tls, host: a.example}", "{kind: tls, host: a.example, sni: b.example}"
    )
    assert (plain.id, fronted.id) == ("tls://a.example:443", "tls://a.example:443?sni=b.example")


# --------------------------------------------------------------------------
# Errors at the top level and in features: (text, line, column, message)

FEATURE = "features:\n  - id: f\n    name: F\n    targets: [{kind: dns, host: a.example}]\n"
TOP = 'name: t\nversion: "1"\nupdated: 2026-11-23\n'

TOP_ERRORS = [
    ("- a\n", 1, 1, "a test list must be a mapping, not a list"),
    ("name: t\n", 1, 1, "a test list is missing the required key 'version'"),
    (TOP, 1, 1, "a test list is missing the required key 'features'"),
    (TOP + "colour: red\n" + FEATURE, 4, 1,
     "'colour' is not a key of a test list (allowed: name, version, description, updated, controls, prefixes, keys, features)"),
    ("name: t\nversion: 1\nupdated: 2026-11-23\n" + FEATURE, 2, 10,
     "'version' must be a string, not an integer (put it in quotes)"),
    ('name: yes\nversion: "1"\nupdated: 2026-11-23\n' + FEATURE, 1, 7,
     "'name' must be a string, not true/false (put it in quotes)"),
    ('name: ""\nversion: "1"\nupdated: 2026-11-23\n' + FEATURE, 1, 7, "'name' must not be empty"),
    ('name: t\nversion: "1"\nupdated: 2026-13-01\n' + FEATURE, 3, 10,
     "'updated' must be a date written YYYY-MM-DD, not '2026-13-01'"),
    ('name: t\nversion: "1"\nupdated: 2026-11-23 10:00:00\n' + FEATURE, 3, 10, "must be a date written YYYY-MM-DD"),
    ('name: t\nversion: "1"\nupdated: [2026]\n' + FEATURE, 3, 10, "must be a date written YYYY-MM-DD, not a list"),
    (TOP + "features: []\n", 4, 11, "'features' must not be empty"),
    (TOP + "features: {a: 1}\n", 4, 11, "'features' must be a list, not a mapping"),
    (TOP + "features:\n  - id: f\n    name: F\n", 5, 5, "a feature is missing the required key 'targets'"),
    (TOP + "features:\n  - id: f\n    name: F\n    targets: []\n", 7, 14, "'targets' must not be empty"),
    (TOP + "features:\n  - id: f\n    name: F\n    owner: x\n    targets: [{kind: dns, host: a.example}]\n", 7, 5,
     "'owner' is not a key of a feature (allowed: id, name, description, source, targets)"),
    (TOP + "features:\n  - id: Web Site\n    name: F\n    targets: [{kind: dns, host: a.example}]\n", 5, 9,
     "feature 'id' 'Web Site' must be lower-case letters, digits, '-' and '_'"),
    (TOP + "features:\n  - id: controls\n    name: F\n    targets: [{kind: dns, host: a.example}]\n", 5, 9,
     "feature id 'controls' is reserved for the controls"),
    (TOP + FEATURE + "  - id: f\n    name: G\n    targets: [{kind: dns, host: b.example}]\n", 8, 9,
     "duplicate feature id 'f' (first at line 5, column 9)"),
    (TOP + "name: again\n" + FEATURE, 4, 1, "duplicate key 'name' (first at line 1, column 1)"),
    (TOP + "<<: {description: x}\n" + FEATURE, 4, 1, "merge keys (<<) are not supported"),
    (TOP + "1: x\n" + FEATURE, 4, 1, "keys must be strings, not an integer"),
    ('name: !!python/object/apply:os.system [echo]\nversion: "1"\nupdated: 2026-11-23\n' + FEATURE, 1, 7,
     "'name' must be a string, not a list tagged tag:yaml.org,2002:python/object/apply:os.system"),
    (TOP + "prefixes: [10.0.0.0/8]\n" + FEATURE, 4, 11, "'prefixes' must be a mapping, not a list"),
    (TOP + "prefixes:\n  fb: [10.0.0.0/8]\n" + FEATURE, 5, 7, "prefix table 'fb' must be a mapping, not a list"),
    (TOP + "prefixes:\n  fb: {asn: 32934}\n" + FEATURE, 5, 7, "prefix table 'fb' is missing the required key 'cidrs'"),
    (TOP + "prefixes:\n  fb: {cidrs: [10.0.0.0/8], owner: me}\n" + FEATURE, 5, 29,
     "'owner' is not a key of prefix table 'fb' (allowed: cidrs, asn, checked, source)"),
    (TOP + "prefixes:\n  fb: {cidrs: [10.0.0.0/8, 157.240.0.1/16]}\n" + FEATURE, 5, 28,
     "bad CIDR prefix '157.240.0.1/16'"),
    (TOP + "prefixes:\n  Face Book: {cidrs: [10.0.0.0/8]}\n" + FEATURE, 5, 3,
     "a prefix table name 'Face Book' must be lower-case letters"),
    (TOP + "controls: 42\n" + FEATURE, 4, 11, "'controls' must be a file name or a list of targets, not an integer"),
    (TOP + "controls: []\n" + FEATURE, 4, 11, "'controls' must not be empty"),
    (TOP + "controls: [{kind: tcp, host: 10.0.0.1, port: 1}]\n" + FEATURE, 4, 30,
     "'host': use a host name, not an IP literal"),
    # YAML syntax, reported where PyYAML's parser stopped.
    ("name: [unclosed\n", 2, 1, "YAML error: while parsing a flow sequence, expected ',' or ']', but got '<stream end>'"),
    ("name: t\n  version: x\n", 2, 10, "YAML error: mapping values are not allowed here"),
    ("a: 1\n---\nb: 2\n", 2, 1, "YAML error: expected a single document in the stream, but found another document"),
    ("a: *nowhere\n", 1, 4, "YAML error: found undefined alias 'nowhere'"),
    ("\tname: t\n", 1, 1, "YAML error: while scanning for the next token, found character '\\t'"),
    ("name: t\x01\n", 1, 8, "YAML error: character U+0001 is not allowed"),
    ("", 1, 1, "the file is empty"),
    ("# only a comment\n", 1, 1, "the file is empty"),
    ("[" * 3000, 1, 1, "YAML error: nesting too deep"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), TOP_ERRORS)
def test_top_level_errors(tmp_path: Path, text: str, line: int, column: int, message: str) -> None:
    error = error_of(write(tmp_path, text))
    assert (error.line, error.column) == (line, column), str(error)
    assert message in error.message


def test_not_utf8_points_at_the_bad_byte(tmp_path: Path) -> None:
    path = write(tmp_path, b'name: t\nversion: "\xff"\n')
    assert str(error_of(path)) == f"{path}:2:11: not UTF-8 text"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert str(error_of(path)) == f"{path}:1:1: cannot read file: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert str(error_of(tmp_path)) == f"{tmp_path}:1:1: cannot read file: Is a directory"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 0 does not stop root, so the refusal is simulated.
    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    path = write(tmp_path, TOP + FEATURE)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert str(error_of(path)) == f"{path}:1:1: cannot read file: Permission denied"


def test_path_is_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "- a\n", "rel.yaml")
    monkeypatch.chdir(tmp_path)
    assert str(error_of(Path("rel.yaml"))).startswith("rel.yaml:1:1: ")


# --------------------------------------------------------------------------
# Defaults and id derivation


def test_defaults_and_derived_ids(tmp_path: Path) -> None:
    dns, aaaa, tcp, tls, https, http = load_targets(
        tmp_path,
        "{kind: dns, host: A.Example}",
        "{kind: dns, host: a.example, rtype: aaaa}",
        "{kind: tcp, host: a.example, port: 5222}",
        "{kind: tls, host: a.example, alpn: [h2, http/1.1]}",
        '{kind: https, url: "https://WWW.A.example/v2/register"}',
        '{kind: http, url: "http://a.example:8080/x?y=1", method: HEAD, throughput: true}',
    )
    assert (dns.id, dns.kind, dns.host, dns.rtype, dns.port, dns.sni) == (
        "dns://a.example/A", TargetKind.DNS, "a.example", "A", None, None
    )
    assert (aaaa.id, aaaa.rtype) == ("dns://a.example/AAAA", "AAAA")
    assert (tcp.id, tcp.port, tcp.sni) == ("tcp://a.example:5222", 5222, None)
    assert (tls.id, tls.port, tls.sni, tls.alpn) == ("tls://a.example:443", 443, "a.example", ("h2", "http/1.1"))
    assert (https.id, https.host, https.port, https.url, https.method) == (
        "https://WWW.A.example/v2/register", "www.a.example", 443, "https://WWW.A.example/v2/register", "GET"
    )
    assert (http.id, http.host, http.port, http.method) == ("http://a.example:8080/x?y=1", "a.example", 8080, "HEAD")
    assert http.throughput and not https.throughput
    assert all(t.expect == Expectations() for t in (dns, tcp, tls, https, http))


def test_explicit_id_replaces_the_derived_one(tmp_path: Path) -> None:
    (target,) = load_targets(tmp_path, "{kind: tls, host: a.example, port: 8443, id: a-tls}")
    assert (target.id, target.port) == ("a-tls", 8443)


def test_expectations_are_read(tmp_path: Path) -> None:
    tls, https = load_targets(
        tmp_path,
        "{kind: tls, host: a.example, expect: {certificate_name: '*.a.example', asn: 64496, checked: 2026-11-01}}",
        '{kind: https, url: "https://a.example/", expect: {status: [200, 403], body_contains: "<title>"}}',
    )
    assert tls.expect == Expectations(certificate_name="*.a.example", asn=64496, checked="2026-11-01")
    assert (https.expect.status, https.expect.body_contains) == ((200, 403), "<title>")


def test_feature_fields(tmp_path: Path) -> None:
    text = TOP + "description: d\nfeatures:\n  - id: web-1\n    name: Web\n    description: x\n    source: s\n" \
        "    targets: [{kind: dns, host: a.example}]\n"
    loaded = load_testlist(write(tmp_path, text))
    (feature,) = loaded.features
    assert (feature.id, feature.name, feature.description, feature.source) == ("web-1", "Web", "x", "s")
    assert (loaded.name, loaded.version, loaded.description, loaded.updated) == ("t", "1", "d", "2026-11-23")


def test_sha256_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, TOP + FEATURE)
    loaded = load_testlist(str(path))
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.path == str(path)


# --------------------------------------------------------------------------
# Prefix tables

TABLE = (
    "prefixes:\n"
    "  fb:\n"
    "    source: RADb\n"
    "    checked: 2026-11-01\n"
    "    asn: 32934\n"
    "    cidrs: [157.240.0.0/16, 2A03:2880::/29]\n"
)


def test_prefix_table_is_resolved_with_its_asn_and_date(tmp_path: Path) -> None:
    text = TOP + TABLE + HEAD[HEAD.index("features:"):] + (
        "      - {kind: dns, host: a.example, expect: {prefixes: fb}}\n"
        "      - {kind: dns, host: b.example, expect: {prefixes: fb, asn: 64496, checked: 2026-11-20}}\n"
        "      - {kind: dns, host: c.example, expect: {prefixes: [198.51.100.0/24]}}\n"
    )
    inherited, overridden, inline = load_testlist(write(tmp_path, text)).features[0].targets
    assert inherited.expect.prefixes == ("157.240.0.0/16", "2a03:2880::/29")
    assert (inherited.expect.asn, inherited.expect.checked) == (32934, "2026-11-01")
    assert overridden.expect.prefixes == inherited.expect.prefixes
    assert (overridden.expect.asn, overridden.expect.checked) == (64496, "2026-11-20")
    assert (inline.expect.prefixes, inline.expect.asn, inline.expect.checked) == (("198.51.100.0/24",), None, None)


def test_unknown_prefix_table_lists_the_defined_ones(tmp_path: Path) -> None:
    text = TOP + TABLE + HEAD[HEAD.index("features:"):] + "      - {kind: dns, host: a.example, expect: {prefixes: fbb}}\n"
    error = error_of(write(tmp_path, text))
    assert (error.line, error.column, error.message) == (14, 57, "unknown prefix table 'fbb' (defined: fb)")


# --------------------------------------------------------------------------
# Controls


def test_inline_controls_get_the_control_prefix(tmp_path: Path) -> None:
    text = TOP + "controls:\n  - {kind: dns, host: ctl.example}\n  - {kind: tls, host: ctl.example, id: mine}\n" + FEATURE
    loaded = load_testlist(write(tmp_path, text))
    assert [t.id for t in loaded.controls] == ["control:dns://ctl.example/A", "control:mine"]


def test_inline_control_with_same_endpoint_as_a_target_does_not_collide(tmp_path: Path) -> None:
    text = TOP + "controls: [{kind: dns, host: a.example}]\n" + FEATURE
    loaded = load_testlist(write(tmp_path, text))
    assert (loaded.controls[0].id, loaded.features[0].targets[0].id) == ("control:dns://a.example/A", "dns://a.example/A")


def test_duplicate_control_ids(tmp_path: Path) -> None:
    text = TOP + "controls:\n  - {kind: dns, host: ctl.example}\n  - {kind: dns, host: ctl.example, rtype: a}\n" + FEATURE
    error = error_of(write(tmp_path, text))
    assert (error.line, error.column) == (6, 5)
    assert error.message.startswith("duplicate target id 'control:dns://ctl.example/A' (first at line 5, column 5)")


def test_controls_by_path_relative_to_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", CONTROLS_FILE, "mine.yaml")
    path = write(tmp_path / "sub", TOP + "controls: mine.yaml\n" + FEATURE)
    monkeypatch.chdir(tmp_path)
    loaded = load_testlist(Path("sub") / "list.yaml")
    assert [t.id for t in loaded.controls] == ["control:dns://ctl.example/A", "control:tls://ctl.example:443"]
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_controls_file_is_reported_at_the_controls_key(tmp_path: Path) -> None:
    path = write(tmp_path, TOP + "controls: gone.yaml\n" + FEATURE)
    error = error_of(path)
    assert (error.path, error.line, error.column) == (str(path), 4, 11)
    assert error.message == f"controls file {str(tmp_path / 'gone.yaml')!r} does not exist or is not a file"


def test_errors_inside_a_controls_file_name_that_file(tmp_path: Path) -> None:
    controls = write(tmp_path, CONTROLS_FILE.replace("ctl.example}", "198.51.100.1}", 1), "c.yaml")
    error = error_of(write(tmp_path, TOP + "controls: c.yaml\n" + FEATURE))
    assert (error.path, error.line, error.column) == (str(controls), 4, 23)
    assert "use a host name, not an IP literal" in error.message


def test_controls_file_schema(tmp_path: Path) -> None:
    write(tmp_path, "name: c\ncontrols: [{kind: dns, host: a.example}]\n", "c.yaml")
    error = error_of(write(tmp_path, TOP + "controls: c.yaml\n" + FEATURE))
    assert (error.path, error.line, error.column) == (str(tmp_path / "c.yaml"), 1, 1)
    assert error.message == "a controls file is missing the required key 'updated'"


def test_default_controls_next_to_the_list_win(tmp_path: Path) -> None:
    write(tmp_path, CONTROLS_FILE, "controls.yaml")
    loaded = load_testlist(write(tmp_path, TOP + FEATURE))
    assert [t.host for t in loaded.controls] == ["ctl.example", "ctl.example"]


def test_default_controls_fall_back_to_the_shipped_file(tmp_path: Path) -> None:
    loaded = load_testlist(write(tmp_path, TOP + FEATURE))
    shipped = load_testlist(SHIPPED / "whatsapp.yaml").controls
    assert loaded.controls == shipped
    assert default_controls_path().is_file()
    assert default_controls_path().read_bytes() == (SHIPPED / "controls.yaml").read_bytes()



def test_no_default_controls_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "default_controls_path", lambda: tmp_path / "absent.yaml")
    path = write(tmp_path, TOP + FEATURE)
    error = error_of(path)
    assert (error.line, error.column) == (1, 1)
    assert error.message.startswith("no 'controls' key and no default controls file")


def test_the_documented_example_loads(tmp_path: Path) -> None:
    docs = (SHIPPED.parent / "docs" / "testlists.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", docs, re.DOTALL)
    assert example is not None
    write(tmp_path, (SHIPPED / "controls.yaml").read_text(encoding="utf-8"), "controls.yaml")
    loaded = load_testlist(write(tmp_path, example.group(1)))
    targets = loaded.features[0].targets
    assert [t.id for t in targets] == [
        "tcp://e1.whatsapp.net:5222",
        "tls://e1.whatsapp.net:443",
        "dns://e1.whatsapp.net/A",
        "https://v.whatsapp.net/v2/register",
        "dns://www.facebook.com/A",
        "dns://www.facebook.com/AAAA",
    ]
    assert targets[4].expect.asn == 32934 and "157.240.0.0/16" in targets[4].expect.prefixes
    assert targets[5].expect.checked == "2026-11-01"


# --------------------------------------------------------------------------
# Fuzz: any input gives a TestList or one TestListError line, nothing else.

ONE_LINE = re.compile(r"[^\n]*:[0-9]+:[0-9]+: [^\n]+")
VOCABULARY = [
    "name", "version", "description", "updated", "controls", "prefixes", "features", "id", "targets", "source",
    "kind", "host", "port", "rtype", "sni", "alpn", "url", "method", "expect", "cidrs", "asn", "checked",
    "certificate_name", "status", "body_contains",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from([
        "dns", "tcp", "tls", "http", "https", "A", "AAAA", "e1.whatsapp.net", "https://a.example/",
        "http://a.example:0/", "10.0.0.0/8", "::1", "2026-11-23", "fb", "control:x", "controls.yaml",
        "../../etc/passwd", "\x00", "h2",
    ]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(VOCABULARY) | st.text(max_size=6), inner, max_size=5),
    max_leaves=25,
)


def mostly(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Usually a plausible value, sometimes anything: gets past the early checks."""
    return st.integers(0, 9).flatmap(lambda roll: VALUES if roll == 0 else valid)


HOSTS = st.sampled_from(["a.example", "E1.whatsapp.net", "x_y.example", "127.0.0.1", "::1", "-bad", "a..b", ""])
EXPECT_FIELDS = {
    "prefixes": st.sampled_from(["fb", "nope"])
    | st.lists(st.sampled_from(["10.0.0.0/8", "10.0.0.1/8", "2a03:2880::/29", "x"]), min_size=1, max_size=3),
    "asn": st.integers(-1, 2**33),
    "checked": st.sampled_from(["2026-11-23", "2026-02-30"]),
    "status": st.lists(st.integers(0, 700), max_size=3),
    "certificate_name": HOSTS | st.just("*.a.example"),
    "body_contains": st.text(max_size=5),
}
TARGET_FIELDS = {
    "host": HOSTS,
    "port": st.integers(-1, 70000),
    "rtype": st.sampled_from(["A", "aaaa", "AXFR", "TXT"]),
    "sni": HOSTS,
    "alpn": st.lists(st.sampled_from(["h2", "http/1.1", ""]), max_size=3),
    "url": st.sampled_from([
        "https://a.example/", "http://a.example:8080/x", "https://[::1]/", "https://a.example:0/",
        "https://a.example:99999/", "ftp://x/", "https://u@a.example/", "http://", "https://a.example/ x",
    ]),
    "method": st.sampled_from(["GET", "HEAD", "POST"]),
    "id": st.sampled_from(["x", "control:y", "a b"]),
}
# Per kind: (fields, expect fields). Mostly the ones that apply, so the fuzz
# reaches the value checks; a stray key now and then tests the rejection.
KINDS = {
    "dns": ("host", "rtype"),
    "tcp": ("host", "port"),
    "tls": ("host", "port", "sni", "alpn", "certificate_name"),
    "http": ("url", "method", "status", "body_contains"),
    "https": ("url", "method", "status", "body_contains", "certificate_name"),
    "udp": ("host", "port"),
}


def target_of(kind: str) -> st.SearchStrategy[object]:
    fields = KINDS[kind]
    expect = st.fixed_dictionaries(
        {},
        optional={key: mostly(EXPECT_FIELDS[key]) for key in ("prefixes", "asn", "checked", *fields) if key in EXPECT_FIELDS},
    )
    first = fields[0]
    return st.fixed_dictionaries(
        {"kind": st.just(kind), first: mostly(TARGET_FIELDS[first])},
        optional={
            **{key: mostly(TARGET_FIELDS[key]) for key in ("id", *fields[1:]) if key in TARGET_FIELDS},
            "expect": mostly(expect),
            "stray": mostly(st.sampled_from(["url", "sni"])),
        },
    )


TARGETS = mostly(st.sampled_from(sorted(KINDS)).flatmap(target_of))
TABLES = st.dictionaries(
    st.sampled_from(["fb", "fb", "fb", "Bad Name"]),
    mostly(st.fixed_dictionaries(
        {"cidrs": mostly(st.lists(st.sampled_from(["157.240.0.0/16", "::/0", "1.2.3.4/40"]), min_size=1, max_size=3))},
        optional={"asn": mostly(st.integers(0, 10)), "checked": mostly(st.just("2026-11-23")), "source": VALUES},
    )),
    max_size=2,
)
FEATURES = st.fixed_dictionaries(
    {
        "id": mostly(st.sampled_from(["f", "g", "h", "i"])),
        "name": mostly(st.just("F")),
        "targets": mostly(st.lists(TARGETS, min_size=1, max_size=4)),
    },
    optional={"source": SCALARS},
)
DOCUMENTS = mostly(
    st.fixed_dictionaries(
        {
            "name": mostly(st.just("t")),
            "version": mostly(st.just("1")),
            "updated": mostly(st.just("2026-11-23")),
            "features": mostly(st.lists(mostly(FEATURES), min_size=1, max_size=3)),
        },
        optional={
            "controls": mostly(st.lists(TARGETS, min_size=1, max_size=3))
            | st.sampled_from(["controls.yaml", "gone.yaml", "\x00"]),
            "prefixes": mostly(TABLES),
        },
    )
)
YAML_PIECES = st.sampled_from([
    "{", "}", "[", "]", ":", ": ", "- ", ",", "\n", "  ", "&a ", "*a", "!!str ", "!!int ", "!x ", "<<: ", "'", '"',
    "?", "|", ">", "#", "---\n", "...\n", "\t", "%YAML 1.1\n", "kind: tcp", "host: a.example", "port: 99999",
    "features:", "targets:", "\\x", "\ufeff", "\x85",
])
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def load_fuzzed(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yaml"
        path.write_bytes(data)
        try:
            load_testlist(path)
        except ListError as error:
            assert ONE_LINE.fullmatch(str(error)), str(error)
            assert str(error).startswith(f"{path}:")
            assert error.line >= 1 and error.column >= 1


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    load_fuzzed(data)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_text(text: str) -> None:
    load_fuzzed(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.lists(YAML_PIECES | st.text(max_size=4), max_size=60))
def test_fuzz_yaml_tokens(pieces: list[str]) -> None:
    load_fuzzed("".join(pieces).encode("utf-8", "surrogatepass"))


@FUZZ
@given(DOCUMENTS, st.booleans())
def test_fuzz_structures(document: object, flow: bool) -> None:
    load_fuzzed(yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True).encode("utf-8", "surrogatepass"))



def test_vpn_targets_get_ports_transports_and_key_names(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(VPN_LIST)
    testlist = load_testlist(path)
    summary = [(t.id, t.port, t.transport) for t in testlist.features[0].targets]
    assert summary == [
        ("wireguard://wg.example:2408", 2408, "udp"),
        ("openvpn://ovpn.example:443/tcp", 443, "tcp"),
        ("openvpn://ovpn.example:1194/udp", 1194, "udp"),
        ("ikev2://ike.example:4500", 4500, "udp"),
        ("pptp://pptp.example:1723", 1723, "tcp"),
        ("l2tp://l2tp.example:1701", 1701, "udp"),
        ("sstp://sstp.example:443", 443, "tcp"),
    ]
    wireguard, _, tls_auth = testlist.features[0].targets[:3]
    assert (wireguard.vpn.key, wireguard.vpn.client_key) == ("server", "client")
    assert (tls_auth.vpn.control, tls_auth.vpn.key_direction, tls_auth.vpn.digest) == ("tls-auth", 1, "sha256")
    # Keys without a value are declared for --vpn-key; only given ones travel.
    assert testlist.keys == (("server", "bmXOC+F1FxEMF9dyiK2H5/1SUtzH0JuVo51h2wPfgyo="),)


def test_a_key_that_does_not_parse_is_named_at_its_value(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(VPN_LIST.replace("bmXOC+F1FxEMF9dyiK2H5/1SUtzH0JuVo51h2wPfgyo=", "short"))
    with pytest.raises(TestListError, match=r"v.yaml:5:19: key 'server' is not a WireGuard public key"):
        load_testlist(path)
