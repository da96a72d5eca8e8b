"""The censor's inspector process: ``python -m probe_lab.censor.daemon --config FILE``.

Runs inside the censor namespace (``probe_lab.censor.apply`` starts it).
Reads every packet that arrives on the client link (an AF_PACKET socket
sees it before netfilter does), hands it to :class:`Inspector`, and
carries out what it answers: raw-socket sends, ``nft add element`` for
residual penalties, log lines. It prints ``ready`` once its sockets are
open. A packet that makes anything here fail is logged and forgotten;
nothing a client sends stops the daemon.

The config file is JSON: ``{"interface": "cl0", "log": PATH, "censor":
<probe_lab.censor.config.to_data output>}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from probe_lab.censor.config import CensorConfigError, parse_censor
from probe_lab.censor.inspect import Action, Inspector, Note, Residual, Send
from probe_lab.censor.rules import RELAY_MARK, RESIDUAL_SETS, TABLE
from probe_lab.servers.ready import announce_ready

log = logging.getLogger("probe_lab.censor")

_ETH_P_ALL = 0x0003
_ETH_HEADER = 14
_IP_ETHERTYPES = (b"\x08\x00", b"\x86\xdd")  # IPv4, IPv6
_SOL_PACKET = 263  # linux/socket.h (the socket module has it from Python 3.12 on)
_PACKET_IGNORE_OUTGOING = 23  # linux/if_packet.h: our own sends are not news
_PACKET_OUTGOING = 4  # sll_pkttype, for kernels without the option above
# Big enough for a GSO super-packet that crossed the veth whole.
_FRAME_MAX = 262144


class _Sockets:
    def __init__(self, interface: str) -> None:
        self.sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        self.sniffer.bind((interface, 0))
        # An older kernel lacks the option: `serve` checks the packet type anyway.
        with contextlib.suppress(OSError):
            self.sniffer.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
        self.sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        # IPPROTO_RAW: we write whole IP headers (IP_HDRINCL is implied),
        # source addresses of other hosts included; they leave through the
        # OUTPUT path, so the forward chain's hand-off drop never sees them.
        # Relayed client packets are marked: the output chain applies the
        # censor's drops to them, not to the packets it forges.
        self.raw = {4: _raw(socket.AF_INET), 6: _raw(socket.AF_INET6)}
        self.relay = {4: _raw(socket.AF_INET, RELAY_MARK), 6: _raw(socket.AF_INET6, RELAY_MARK)}

    def frames(self) -> tuple[bytes, int]:
        frame, address = self.sniffer.recvfrom(_FRAME_MAX)
        return frame, address[2]


def _raw(family: socket.AddressFamily, mark: int = 0) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    if mark:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    return sock


def carry_out(action: Action, sockets: _Sockets) -> None:
    if isinstance(action, Send):
        raw = sockets.relay if action.relay else sockets.raw
        try:
            raw[action.version].sendto(action.packet, (action.dst, 0))
        except PermissionError:
            if not action.relay:
                raise
            # EPERM: the output chain dropped it, as forward would have.
            log.info("relay: a packet to %s stays dropped by the censor's rules", action.dst)
    elif isinstance(action, Residual):
        element = (
            f"{{ {action.client} . {action.server} . {action.protocol} . {action.port} "
            f"timeout {max(1, round(action.seconds * 1000))}ms }}"
        )
        argv = ["nft", "add", "element", "inet", TABLE, RESIDUAL_SETS[action.version], element]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode:
            log.error("residual: %s: %s", " ".join(argv), done.stderr.strip())
        else:
            log.info("residual: %s -> %s protocol %d port %d for %gs", action.client,
                     action.server, action.protocol, action.port, action.seconds)  # fmt: skip
    elif isinstance(action, Note):
        log.info("%s", action.text)


def serve(inspector: Inspector, sockets: _Sockets) -> None:
    while True:
        frame, kind = sockets.frames()
        if kind == _PACKET_OUTGOING or frame[12:14] not in _IP_ETHERTYPES:
            continue
        try:
            for action in inspector.feed(frame[_ETH_HEADER:], time.monotonic()):
                carry_out(action, sockets)
        except Exception:  # one bad packet, or one failed send, must not end the censor
            log.exception("while handling a %d-byte frame", len(frame))


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m probe_lab.censor.daemon")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        settings = json.loads(args.config.read_text())
        config = parse_censor(settings["censor"], str(args.config))
        interface, log_path = settings["interface"], settings["log"]
    except CensorConfigError as exc:  # already names the file
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{args.config}: not a censor config: {exc!r}", file=sys.stderr)
        return 2
    logging.basicConfig(
        filename=log_path, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    signal.signal(signal.SIGTERM, _stop)
    try:
        sockets = _Sockets(interface)
    except OSError as exc:
        log.error("cannot open sockets on %s: %s", interface, exc)
        print(f"cannot open sockets on {interface}: {exc}", file=sys.stderr)
        return 1
    inspector = Inspector(config, random.Random(config.seed).random)
    log.info("ready on %s", interface)
    announce_ready()
    try:
        serve(inspector, sockets)
    finally:
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
