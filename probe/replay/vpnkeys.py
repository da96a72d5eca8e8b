"""A VPN key file: the keys a captured run was given, for its replay.

A replay hears a VPN server's reply only with the keys the live run held
(a tls-crypt reply names our session inside its encryption), and judges
silence by whether they were given (``answerable``). ``probe run`` never
writes them down: they are the user's secrets, given with ``--vpn-key``
and passed to ``probe replay`` the same way. The lab makes throwaway keys
for each run and has nowhere else to keep them once it is gone, so it
writes them to a key file (JSON: name to value) beside its capture
(``probe_lab.capture.vpn_keys_path``), and hands it to a replay with
``probe replay --vpn-keys FILE``. A replay never reads keys it was not
pointed at: secrets are used only when asked for. The file is written
0600 and atomically (``probe.files.write_private``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from probe.errors import InputError
from probe.files import write_private
from probe.lists import parse_vpn_key

__all__ = ["read_vpn_keys", "write_vpn_keys"]


def write_vpn_keys(path: Path, keys: Mapping[str, str]) -> None:
    """Keep ``keys`` (as ``--vpn-key`` takes them: ``@FILE`` values are read
    now, while the files exist) in ``path``; InputError as ``--vpn-key``."""
    values = dict(parse_vpn_key(f"{name}={value}") for name, value in sorted(keys.items()))
    write_private(path, (json.dumps(values, indent=2) + "\n").encode())


def read_vpn_keys(path: Path) -> dict[str, str]:
    """The keys in ``path``; InputError with one line when it cannot be read
    or is not what :func:`write_vpn_keys` writes."""
    try:
        keys = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"--vpn-keys {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--vpn-keys {path}: not a VPN key file: {exc}") from None
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise InputError(f"--vpn-keys {path}: not a VPN key file (expected an object of names to strings)")
    return keys
