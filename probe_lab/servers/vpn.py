"""The lab's VPN servers and the keys a probe needs to talk to them.

| service | program | ports |
|---|---|---|
| OpenVPN plain, tls-auth, tls-crypt | openvpn | UDP+TCP 1194, UDP 1195, UDP 1196 |
| WireGuard | wireguard-go | UDP 2408, 51820 |
| IKEv2 | strongSwan charon | UDP 500, 4500 |
| PPTP, L2TP | pptpd, xl2tpd | TCP 1723, UDP 1701 (IPv4) |
| SSTP | :mod:`probe_lab.servers.sstp` | TCP 4443 (443 where redirected) |

Every lab makes its keys afresh; :class:`VPNLab` is what the probe gets.
"""

from __future__ import annotations

import base64
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from probe.vpn.registry import KeyRole
from probe_lab.certs import LabCerts
from probe_lab.servers.ikev2 import ikev2_service
from probe_lab.servers.openvpn import (
    TLS_AUTH_CLIENT_DIRECTION,
    openvpn_services,
    write_static_key,
)
from probe_lab.servers.ppp import l2tp_service, pptp_service
from probe_lab.servers.service import Service
from probe_lab.servers.wireguard import wireguard_services

__all__ = ["SSTP_PORT", "VPNLab", "redirect_ruleset", "vpn_services"]

SSTP_PORT = 4443  # nginx has 443
_SSTP_TABLE = "plab_sstp"


@dataclass(frozen=True, slots=True)
class VPNLab:
    """What a probe needs to get an answer from the lab's VPN servers."""

    wireguard_public_key: str  # the servers' static public key, base64
    # A private key the WireGuard servers know as a peer, base64: they drop
    # initiations from any other key in silence.
    wireguard_client_key: str
    tls_auth_key: Path  # OpenVPN static key file of the tls-auth server
    tls_auth_direction: int  # the CLIENT's key-direction for it
    tls_crypt_key: Path  # OpenVPN static key file of the tls-crypt server

    def key(self, role: KeyRole) -> str:
        """The lab's key for ``role``, as ``--vpn-key`` takes it (key files by path, ``@FILE``)."""
        return {
            KeyRole.WIREGUARD_SERVER: self.wireguard_public_key,
            KeyRole.WIREGUARD_CLIENT: self.wireguard_client_key,
            KeyRole.TLS_AUTH: f"@{self.tls_auth_key}",
            KeyRole.TLS_CRYPT: f"@{self.tls_crypt_key}",
        }[role]


def vpn_services(directory: Path, certs: LabCerts, server_ns: str) -> tuple[VPNLab, tuple[Service, ...]]:
    """Make the keys and write every VPN server's configuration into
    ``directory``; LookupError when a server's program is missing."""
    server, client = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    lab = VPNLab(
        wireguard_public_key=_base64(_raw_public(server)),
        wireguard_client_key=_base64(_raw_private(client)),
        tls_auth_key=write_static_key(directory / "tls-auth.key"),
        tls_auth_direction=TLS_AUTH_CLIENT_DIRECTION,
        tls_crypt_key=write_static_key(directory / "tls-crypt.key"),
    )
    services = (
        *openvpn_services(directory, certs, lab.tls_auth_key, lab.tls_crypt_key),
        *wireguard_services(directory, _raw_private(server), _raw_public(client)),
        ikev2_service(directory, server_ns),
        pptp_service(directory),
        l2tp_service(directory),
        Service("sstp", (sys.executable, "-m", "probe_lab.servers.sstp", f"--port={SSTP_PORT}",
                         f"--cert={certs.leaf}", f"--key={certs.leaf_key}"), says_ready=True),
    )
    return lab, services


def redirect_ruleset(addresses: Sequence[str], port: int = SSTP_PORT) -> str:
    """nftables rules for the server namespace: TCP 443 to ``addresses``
    goes to the SSTP responder on ``port``; every other address keeps nginx
    (a nat rule in prerouting: replies leave from port 443 again).

    ValueError when an address is not an IP address.
    """
    parsed = [ipaddress.ip_address(a) for a in addresses]
    rules = [
        f"        {family} daddr {{ {', '.join(str(a) for a in parsed if a.version == version)} }}"
        f" tcp dport 443 redirect to :{port}"
        for family, version in (("ip", 4), ("ip6", 6))
        if any(a.version == version for a in parsed)
    ]
    return "\n".join([
        f"table inet {_SSTP_TABLE} {{",
        "    chain prerouting {",
        "        type nat hook prerouting priority dstnat; policy accept;",
        *rules,
        "    }",
        "}",
    ]) + "\n"


def _raw_private(key: x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _raw_public(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
