"""The PPP tunnels: PPTP (Debian's ``pptpd``) and L2TP (``xl2tpd``).

A probe's check is each protocol's first control message:
Start-Control-Connection-Request on TCP :data:`PPTP_PORT` answered by a
Reply (RFC 2637 section 2.1-2.2), and SCCRQ on UDP :data:`L2TP_PORT`
answered by SCCRP (RFC 2661 section 6.1-6.2). Both daemons speak IPv4 only
and listen on 0.0.0.0, so every IPv4 address of the pool answers. Neither
starts pppd for a control connection; a call (which no probe makes) would
use the options file written here.

All their files (configuration, pid file, xl2tpd's control pipe) stay in
the lab's directory; pptpd logs to syslog only, so its log holds just what
it prints on failure.
"""

from __future__ import annotations

from pathlib import Path

from probe_lab.requirements import find_program
from probe_lab.servers.service import Service

__all__ = ["L2TP_PORT", "PPTP_PORT", "l2tp_service", "pptp_service"]

PPTP_PORT = 1723
L2TP_PORT = 1701

# Refuse every authentication but MS-CHAPv2, as a PPTP/L2TP server in the
# wild does; never touch the namespace's routes.
_PPP_OPTIONS = """\
# Written by probe_lab.servers.ppp for one lab; removed with the lab.
name lab
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
nodefaultroute
"""


def pptp_service(directory: Path) -> Service:
    """LookupError when pptpd is not installed."""
    program = find_program("pptpd")
    options = _ppp_options(directory)
    config = directory / "pptpd.conf"
    config.write_text("# Written by probe_lab.servers.ppp for one lab; removed with the lab.\n"
                      f"option {options}\n")
    # -f: foreground; -c, -o, -p: every file it reads or writes.
    argv = (program, "-f", "-c", str(config), "-o", str(options),
            "-p", str(directory / "pptpd.pid"))
    return Service("pptp", argv, tcp=(PPTP_PORT,))


def l2tp_service(directory: Path) -> Service:
    """LookupError when xl2tpd is not installed."""
    program = find_program("xl2tpd")
    options = _ppp_options(directory)
    secrets = directory / "l2tp-secrets"
    secrets.write_text("")
    secrets.chmod(0o600)
    config = directory / "xl2tpd.conf"
    config.write_text(f"""\
; Written by probe_lab.servers.ppp for one lab; removed with the lab.
[global]
port = {L2TP_PORT}
access control = no
; xl2tpd turns on IP_PKTINFO only with this (network.c in 1.3.18); without it
; replies leave from the namespace's first address, not the one the client
; wrote to. Without IPsec the SA references stay empty, and nothing changes.
ipsec saref = yes
auth file = {secrets}
[lns default]
require authentication = no
pppoptfile = {options}
""")
    # -D: foreground; -c, -p, -C: every file it reads or writes.
    argv = (program, "-D", "-c", str(config), "-p", str(directory / "xl2tpd.pid"),
            "-C", str(directory / "xl2tpd.control"))
    return Service("l2tp", argv, udp=(L2TP_PORT,))


def _ppp_options(directory: Path) -> Path:
    path = directory / "ppp-options"
    path.write_text(_PPP_OPTIONS)
    return path
