"""The VPN keys a captured run was given, kept beside its capture.

A replay hears a VPN server's reply only with the keys the live run held
(a tls-crypt reply names our session inside its encryption), and judges
silence by whether they were given (``answerable``). ``probe run`` never
writes them down: they are the user's secrets, given with ``--vpn-key``
and passed to ``probe replay`` the same way. The lab makes throwaway keys
for each run and has nowhere else to keep them once it is gone, so it
leaves them beside its capture as ``FILE.vpnkeys`` (JSON: name to value),
where ``probe replay`` and the lab's agreement test read them, as they
read ``FILE.keylog``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from probe.errors import InputError
from probe.lists import parse_vpn_key

__all__ = ["read_vpn_keys", "vpn_keys_path", "write_vpn_keys"]


def vpn_keys_path(pcap: Path) -> Path:
    return pcap.with_name(pcap.name + ".vpnkeys")


def write_vpn_keys(pcap: Path, keys: Mapping[str, str]) -> Path:
    """Keep ``keys`` (as ``--vpn-key`` takes them: ``@FILE`` values are read
    now, while the files exist) beside ``pcap``; ValueError as ``--vpn-key``."""
    values = dict(parse_vpn_key(f"{name}={value}") for name, value in sorted(keys.items()))
    path = vpn_keys_path(pcap)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def read_vpn_keys(pcap: Path) -> dict[str, str]:
    """The keys kept beside ``pcap`` (none when there is no such file);
    ValueError with one line when the file is not what ``write_vpn_keys`` writes."""
    path = vpn_keys_path(pcap)
    if not path.is_file():
        return {}
    try:
        keys = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a VPN key file: {exc}") from None
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise InputError(f"{path}: not a VPN key file (expected an object of names to strings)")
    return keys
