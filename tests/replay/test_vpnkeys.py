"""probe.replay.vpnkeys: the lab's VPN key file, written private, read only when named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from probe.errors import InputError
from probe.replay.vpnkeys import read_vpn_keys, write_vpn_keys


def test_keys_round_trip_through_a_private_file(tmp_path: Path) -> None:
    ta = tmp_path / "ta.key"
    ta.write_text("static key\n")
    path = tmp_path / "run.pcap.vpnkeys"
    write_vpn_keys(path, {"wg": "c2VydmVy", "tls": f"@{ta}"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_vpn_keys(path) == {"tls": "static key", "wg": "c2VydmVy"}  # @FILE read at write


@pytest.mark.parametrize(("content", "message"), [
    (None, "No such file"),
    (b"\xff", "not a VPN key file"),
    (b"[1, 2]", "expected an object of names to strings"),
    (b'{"wg": 1}', "expected an object of names to strings"),
])
def test_a_bad_key_file_is_one_input_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as raised:
        read_vpn_keys(path)
    assert str(raised.value).startswith(f"--vpn-keys {path}") and "\n" not in str(raised.value)
