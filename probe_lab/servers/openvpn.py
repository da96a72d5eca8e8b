"""OpenVPN servers (Debian's ``openvpn``, 2.6) in three flavours.

A probe's OpenVPN check is the first exchange: P_CONTROL_HARD_RESET_CLIENT_V2
in, P_CONTROL_HARD_RESET_SERVER_V2 back. Servers in the wild wrap that
control channel three ways, so the lab runs one server per way:

* plain, on UDP and TCP :data:`OPENVPN_PORT`;
* ``tls-auth`` (an HMAC on every control packet, keyed by a static key and
  a key direction), on UDP :data:`TLS_AUTH_PORT`;
* ``tls-crypt`` (control packets encrypted and authenticated with a static
  key), on UDP :data:`TLS_CRYPT_PORT`.

Each listens on the wildcard of both families (``udp6``/``tcp6-server``
sockets accept IPv4 too); ``multihome`` makes a UDP server answer from the
address the client wrote to, as the server namespace holds the whole pool.
``--mode server`` needs a tun device: each server opens its own in the
server namespace and gives it no address, so no packet ever reaches it.
The certificate is the lab leaf (EC P-256; ``dh none`` as ECDHE needs no
DH parameters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from probe.files import write_private
from probe_lab.certs import LabCerts
from probe_lab.requirements import find_program
from probe_lab.servers.service import Service

__all__ = [
    "OPENVPN_PORT",
    "TLS_AUTH_CLIENT_DIRECTION",
    "TLS_AUTH_PORT",
    "TLS_CRYPT_PORT",
    "openvpn_services",
    "write_static_key",
]

OPENVPN_PORT = 1194
TLS_AUTH_PORT = 1195
TLS_CRYPT_PORT = 1196
# `tls-auth FILE 0` on the server, so a client uses key direction 1
# (OpenVPN's manual, --key-direction).
_TLS_AUTH_SERVER_DIRECTION = 0
TLS_AUTH_CLIENT_DIRECTION = 1

_STATIC_KEY_BYTES = 256  # four 512-bit keys: cipher and HMAC, each direction


@dataclass(frozen=True, slots=True)
class _Flavour:
    name: str  # the service's name, also its tun device's (at most 15 characters)
    proto: str
    port: int
    wrap: str  # the control channel's protection line, or ""


def write_static_key(path: Path) -> Path:
    """A fresh key in the file format ``openvpn --genkey secret`` writes
    (used by both ``tls-auth`` and ``tls-crypt``)."""
    key = os.urandom(_STATIC_KEY_BYTES).hex()
    lines = [key[i:i + 32] for i in range(0, len(key), 32)]
    write_private(path, ("\n".join([
        "#", "# 2048 bit OpenVPN static key", "#",
        "-----BEGIN OpenVPN Static key V1-----", *lines, "-----END OpenVPN Static key V1-----",
    ]) + "\n").encode())
    return path


def openvpn_services(directory: Path, certs: LabCerts, tls_auth_key: Path,
                     tls_crypt_key: Path) -> tuple[Service, ...]:
    """Write the four servers' configurations into ``directory``; LookupError
    when openvpn is not installed."""
    program = find_program("openvpn")
    flavours = (
        _Flavour("openvpn-udp", "udp6", OPENVPN_PORT, ""),
        _Flavour("openvpn-tcp", "tcp6-server", OPENVPN_PORT, ""),
        _Flavour("openvpn-auth", "udp6", TLS_AUTH_PORT,
                 f"tls-auth {tls_auth_key} {_TLS_AUTH_SERVER_DIRECTION}"),
        _Flavour("openvpn-crypt", "udp6", TLS_CRYPT_PORT, f"tls-crypt {tls_crypt_key}"),
    )
    services = []
    for flavour in flavours:
        config = directory / f"{flavour.name}.conf"
        config.write_text(_config(flavour, directory, certs))
        tcp = flavour.proto.startswith("tcp")
        services.append(Service(
            flavour.name, (program, "--config", str(config)),
            tcp=(flavour.port,) if tcp else (), udp=() if tcp else (flavour.port,),
        ))
    return tuple(services)


def _config(flavour: _Flavour, directory: Path, certs: LabCerts) -> str:
    udp = flavour.proto.startswith("udp")
    return "\n".join(line for line in (
        "# Written by probe_lab.servers.openvpn for one lab; removed with the lab.",
        "mode server",
        "tls-server",
        f"proto {flavour.proto}",
        f"port {flavour.port}",
        "multihome" if udp else "",
        f"dev {flavour.name}",
        "dev-type tun",
        # No kernel data channel offload: the tun device only has to exist.
        "disable-dco",
        f"ca {certs.ca}",
        f"cert {certs.leaf}",
        f"key {certs.leaf_key}",
        "dh none",
        flavour.wrap,
        "keepalive 10 60",
        f"writepid {directory / (flavour.name + '.pid')}",
        "verb 3",
    ) if line) + "\n"
