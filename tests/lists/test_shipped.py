"""probe.lists.shipped, and the shipped lists themselves: where they are, what they hold."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest
from list_samples import CONTROLS_FILE, SHIPPED, SHIPPED_LISTS, write

import probe
from probe.lists import default_controls_path, default_testlists, load_testlist
from probe.model import TargetKind


def test_default_controls_path_prefers_the_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Installed, testlists/ becomes the package probe.testlists.
    (tmp_path / "testlists").mkdir()
    installed = write(tmp_path / "testlists", CONTROLS_FILE, "controls.yaml")
    monkeypatch.setattr(probe, "__path__", [*probe.__path__, str(tmp_path)])
    try:
        assert default_controls_path() == installed
    finally:
        sys.modules.pop("probe.testlists", None)
        vars(probe).pop("testlists", None)


@pytest.mark.parametrize("path", SHIPPED_LISTS, ids=lambda p: p.stem)
def test_shipped_list_loads(path: Path) -> None:
    loaded = load_testlist(path)
    assert loaded.name == path.stem
    assert loaded.updated == "2026-11-23"
    assert loaded.features and loaded.controls
    for feature in loaded.features:
        assert feature.source and "2026-11-23" in feature.source, feature.id
    for target in (t for f in loaded.features for t in f.targets):
        with pytest.raises(ValueError):
            ipaddress.ip_address(target.host)


def test_shipped_lists_are_the_expected_ones() -> None:
    assert [p.stem for p in SHIPPED_LISTS] == ["facebook", "vpn", "whatsapp"]
    assert [p.resolve() for p in default_testlists()] == SHIPPED_LISTS


def test_shipped_controls_mix_dns_and_tls_over_several_operators() -> None:
    controls = load_testlist(SHIPPED / "whatsapp.yaml").controls
    assert {t.kind for t in controls} == {TargetKind.DNS, TargetKind.TLS, TargetKind.HTTPS}
    # One timed download: the baseline of the throttled method.
    assert [t.host for t in controls if t.throughput] == ["upload.wikimedia.org"]
    assert len({t.host for t in controls}) >= 5
    assert all(t.id.startswith("control:") for t in controls)


def test_whatsapp_messaging_endpoints() -> None:
    features = {f.id: f for f in load_testlist(SHIPPED / "whatsapp.yaml").features}
    assert {"messaging", "registration", "web", "media"} <= set(features)
    endpoints = {(t.host, t.port) for t in features["messaging"].targets}
    assert endpoints == {(f"e{n}.whatsapp.net", port) for n in range(1, 17) for port in (443, 5222)}
    assert [t.url for t in features["registration"].targets] == ["https://v.whatsapp.net/v2/register"]


def test_facebook_dns_targets_are_checked_against_as32934() -> None:
    loaded = load_testlist(SHIPPED / "facebook.yaml")
    assert {f.id for f in loaded.features} == {"web", "api", "cdn", "mqtt", "stun-dns"}
    dns = [t for f in loaded.features for t in f.targets if t.kind is TargetKind.DNS]
    hosts = {t.host for t in dns}
    assert {"b-api.facebook.com", "b-graph.facebook.com", "edge-mqtt.facebook.com", "external.xx.fbcdn.net",
            "scontent.xx.fbcdn.net", "star.c10r.facebook.com", "stun.fbsbx.com", "www.facebook.com"} == hosts
    for target in dns:
        assert target.expect.asn == 32934 and target.expect.checked == "2026-11-23"
        assert {"157.240.0.0/16", "31.13.64.0/18", "2a03:2880::/29"} <= set(target.expect.prefixes)
