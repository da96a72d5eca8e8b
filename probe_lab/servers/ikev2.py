"""An IKEv2 responder: strongSwan's charon (Debian's ``charon-systemd``).

A probe's IKEv2 check is the IKE_SA_INIT exchange (RFC 7296 section 1.2)
on UDP 500 and, after a NAT, 4500. The lab's charon accepts the proposals
stock clients send (AES-GCM or AES-CBC with HMAC-SHA2, groups curve25519,
ECP-256/384 and MODP-2048) and answers with a real IKE_SA_INIT response;
authentication would fail later, which no probe reaches.

Nothing of it lives outside the lab's directory: ``charon-systemd`` (rather
than ``charon``, which always writes ``/var/run/charon.pid`` and refuses to
start while another lab's charon runs) reads the configuration named by
``STRONGSWAN_CONF``, logs to stderr (the lab's log) instead of the
journal, and keeps its control socket (vici) in the lab's directory. Once
that socket exists, ``swanctl --load-conns`` loads the connection from a
file there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from probe_lab.requirements import find_program
from probe_lab.servers.service import (
    Configure,
    Service,
    keep_trying,
    server_error,
)
from probe_lab.topology import child_env, run_in

__all__ = ["IKE_PORTS", "ikev2_service"]

IKE_PORTS = (500, 4500)  # RFC 7296 section 2; 4500 after NAT (RFC 3948)
_NAME = "ikev2"
# AEAD proposals cannot carry an integrity algorithm (RFC 5282 section 8),
# hence two; "default" adds strongSwan's own list.
_PROPOSALS = ("aes256gcm16-aes128gcm16-prfsha384-prfsha256-curve25519-ecp256-ecp384-modp2048, "
              "aes256-aes128-sha384-sha256-sha1-curve25519-ecp256-ecp384-modp2048-modp1024, "
              "default")
_PLUGINS = "random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey kernel-netlink socket-default vici"


def ikev2_service(directory: Path, server_ns: str) -> Service:
    """Write charon's and swanctl's configuration; LookupError when strongSwan
    is not installed."""
    charon = find_program("charon-systemd")
    swanctl = find_program("swanctl")
    conf = directory / "strongswan.conf"
    vici = directory / f"{_NAME}.vici"
    conf.write_text(_strongswan_conf(vici))
    connections = directory / "swanctl.conf"
    connections.write_text(_swanctl_conf())
    load = (swanctl, "--load-conns", "--file", str(connections), "--uri", f"unix://{vici}")
    env = (("STRONGSWAN_CONF", str(conf)),)
    return Service(_NAME, (charon,), env=env, udp=IKE_PORTS,
                   configure=_loader(server_ns, vici, load, env, directory / f"{_NAME}.log"))


def _loader(server_ns: str, vici: Path, load: tuple[str, ...], env: tuple[tuple[str, str], ...],
            log: Path) -> Configure:
    def attempt() -> bool:
        with open(log, "ab") as out:
            result = run_in(server_ns, load, stdout=out, stderr=out, check=False,
                            env=child_env(**dict(env)))
        return result.returncode == 0

    def configure(process: subprocess.Popen[bytes], deadline: float) -> None:
        if not keep_trying(vici.exists, process, deadline):
            raise server_error(_NAME, "did not open its control socket", log)
        # The socket file appears just before charon listens on it.
        if not keep_trying(attempt, process, deadline):
            raise server_error(_NAME, "did not load its connection", log)
    return configure


def _strongswan_conf(vici: Path) -> str:
    return f"""\
# Written by probe_lab.servers.ikev2 for one lab; removed with the lab.
charon-systemd {{
    journal {{
        default = -1
    }}
}}
charon {{
    port = {IKE_PORTS[0]}
    port_nat_t = {IKE_PORTS[1]}
    # Take the first of the client's proposals that we support, so the
    # group of its KE payload is accepted without a round trip.
    prefer_configured_proposals = no
    # Every probe leaves a half-open IKE_SA behind: never ask for cookies
    # (RFC 7296 section 2.6; by default after 3 from one address) nor block
    # a client for them.
    dos_protection = no
    install_routes = no
    install_virtual_ip = no
    routing_table = 0
    load_modular = no
    load = {_PLUGINS}
    filelog {{
        stderr {{
            default = 1
        }}
    }}
    plugins {{
        vici {{
            socket = unix://{vici}
        }}
    }}
}}
swanctl {{
    load = pem pkcs1 pkcs8 x509 pubkey
}}
"""


def _swanctl_conf() -> str:
    return f"""\
# Written by probe_lab.servers.ikev2 for one lab; removed with the lab.
connections {{
    lab {{
        version = 2
        proposals = {_PROPOSALS}
        local {{
            auth = psk
        }}
        remote {{
            auth = psk
        }}
    }}
}}
"""
