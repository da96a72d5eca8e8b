"""WireGuard servers: Debian's ``wireguard-go``, one device per port.

A WireGuard server answers a handshake initiation only when its MAC1 is
keyed with the server's public key and the initiator's static key is one
of its peers; anything else is dropped in silence (the WireGuard paper,
section 5.1). It also drops an initiation that comes less than 20 ms after
the peer's last one or whose timestamp is not newer (wireguard-go,
``ConsumeMessageInitiation``). So the lab makes a server key pair and one client key pair,
and each device knows that client as its only peer (without allowed IPs:
no packet is ever routed through it). :data:`WIREGUARD_PORTS` are
Cloudflare WARP's 2408 and WireGuard's customary 51820.

wireguard-go takes its settings over a control socket it makes in
``/var/run/wireguard`` (fixed at build time). So it starts in a mount
namespace of its own (``unshare --mount``) where a directory of the lab is
mounted on ``/run``: the socket lands in the lab's directory and two labs
never meet. The lab then writes the keys and port through that socket (the
cross-platform userspace protocol, https://www.wireguard.com/xplatform/).
The device serves from then on, though its tun interface stays down and
without an address. It listens on the wildcard of both families and
answers from the address a packet came to.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from probe_lab.requirements import find_program
from probe_lab.servers.service import (
    Configure,
    Service,
    keep_trying,
    server_error,
)
from probe_lab.topology import LabError

__all__ = ["WIREGUARD_PORTS", "wireguard_services"]

WIREGUARD_PORTS = (2408, 51820)
_UAPI_TIMEOUT = 2.0
# Binds the lab's directory on /run in a private mount namespace, then
# becomes wireguard-go in the foreground.
_SCRIPT = 'mount --bind "$1" /run && exec "$2" --foreground "$3"'


def wireguard_services(directory: Path, private_key: bytes,
                       peer_public_key: bytes) -> tuple[Service, ...]:
    """One service per port; LookupError when wireguard-go is not installed.

    Keys are raw 32-byte X25519 keys.
    """
    program = find_program("wireguard-go")
    run = directory / "wireguard-run"
    run.mkdir(exist_ok=True)
    services = []
    for port in WIREGUARD_PORTS:
        name, device = f"wireguard-{port}", f"wg{port}"
        settings = (f"private_key={private_key.hex()}", f"listen_port={port}",
                    f"public_key={peer_public_key.hex()}")
        services.append(Service(
            name,
            ("unshare", "--mount", "--propagation", "private",
             "sh", "-c", _SCRIPT, "sh", str(run), program, device),
            # Foreground without the banner about the kernel module; log
            # each handshake.
            env=(("WG_PROCESS_FOREGROUND", "1"), ("LOG_LEVEL", "verbose")),
            udp=(port,),
            configure=_configurer(name, directory / f"{name}.log",
                                  run / "wireguard" / f"{device}.sock", settings),
        ))
    return tuple(services)


def _configurer(name: str, log: Path, control: Path, settings: tuple[str, ...]) -> Configure:
    def configure(process: subprocess.Popen[bytes], deadline: float) -> None:
        def attempt() -> bool:
            try:
                _uapi_set(control, settings)
            # The socket file appears just before wireguard-go listens on it.
            except (FileNotFoundError, ConnectionRefusedError):
                return False
            return True

        try:
            configured = keep_trying(attempt, process, deadline)
        except (OSError, LabError) as exc:
            raise server_error(name, f"refused its settings ({exc})", log) from None
        if not configured:
            raise server_error(name, "did not open its control socket", log)
    return configure


def _uapi_set(control: Path, settings: tuple[str, ...]) -> None:
    """One ``set=1`` transaction; the device answers ``errno=0`` on success."""
    request = "set=1\n" + "".join(f"{line}\n" for line in settings) + "\n"
    reply = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(_UAPI_TIMEOUT)
        conn.connect(str(control))
        conn.sendall(request.encode())
        while not reply.endswith(b"\n\n"):
            chunk = conn.recv(256)
            if not chunk:
                break
            reply += chunk
    if reply.strip() != b"errno=0":
        raise LabError(reply.decode(errors="replace").strip() or "no answer")
