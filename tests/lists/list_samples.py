"""Test list texts and helpers shared by the tests of probe.lists."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "testlists"
SHIPPED_LISTS = sorted(p for p in SHIPPED.glob("*.yaml") if p.name != "controls.yaml")

CONTROLS_FILE = "name: c\nupdated: 2026-11-23\ncontrols:\n  - {kind: dns, host: ctl.example}\n  - {kind: tls, host: ctl.example}\n"


VPN_LIST = """\
name: v
version: "1"
updated: 2026-11-23
keys:
  server: {value: "bmXOC+F1FxEMF9dyiK2H5/1SUtzH0JuVo51h2wPfgyo=", source: "the provider's profile"}
  client: {source: "your own client's PrivateKey"}
  ta: {}
features:
  - id: vpn
    name: VPN
    targets:
      - {kind: wireguard, host: wg.example, port: 2408, key: server, client_key: client}
      - {kind: openvpn, host: ovpn.example, transport: tcp, port: 443}
      - {kind: openvpn, host: ovpn.example, control: tls-auth, key: ta, key_direction: 1, auth: sha256}
      - {kind: ikev2, host: ike.example, port: 4500}
      - {kind: pptp, host: pptp.example}
      - {kind: l2tp, host: l2tp.example}
      - {kind: sstp, host: sstp.example}
"""



def write(directory: Path, text: str | bytes, name: str = "list.yaml") -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
