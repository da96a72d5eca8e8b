"""probe.files: whole or absent, and never readable by anyone but the owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probe.files import write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "secret", b"key")
    finally:
        os.umask(old)
    assert (tmp_path / "secret").read_bytes() == b"key"
    assert _mode(tmp_path / "secret") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temp file left


def test_the_data_is_private_before_it_has_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only moment a reader could see it, the temp file, is already 0600 and whole."""
    seen: list[tuple[int, bytes]] = []
    replace = os.replace

    def spy(source: str | Path, target: str | Path) -> None:
        seen.append((_mode(Path(source)), Path(source).read_bytes()))
        replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    target = tmp_path / "keys"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private(target, b"new keys")
    assert seen == [(0o600, b"new keys")]
    assert target.read_bytes() == b"new keys" and _mode(target) == 0o600


def test_without_replace_an_existing_file_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "signing-key.pem"
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        write_private(target, b"ours", replace=False)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["signing-key.pem"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_private(tmp_path / "missing-dir" / "keys", b"x")
    assert list(tmp_path.iterdir()) == []
