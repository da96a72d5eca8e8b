from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from probe.keys import (
    KeyFileError,
    config_dir,
    generate_key,
    key_info,
    key_path,
    load_or_create_key,
)
from probe.sign import key_id_for, public_key_bytes, sign_report, verify_report


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config" / "probe"
    monkeypatch.setenv("PROBE_CONFIG_DIR", str(directory))
    return directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROBE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert config_dir() == tmp_path / "home" / ".config" / "probe"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG spec says so
    assert config_dir() == tmp_path / "home" / ".config" / "probe"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "probe"
    monkeypatch.setenv("PROBE_CONFIG_DIR", str(tmp_path / "explicit"))
    assert config_dir() == tmp_path / "explicit"
    assert key_path() == tmp_path / "explicit" / "signing-key.pem"


def test_key_is_created_private_on_first_use(config: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not widen the modes
    try:
        key = load_or_create_key()
    finally:
        os.umask(old_umask)
    path = config / "signing-key.pem"
    assert mode(path) == 0o600
    assert mode(config) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    assert sorted(os.listdir(config)) == ["signing-key.pem"]  # no temp file left
    # The second call loads the same key.
    assert public_key_bytes(load_or_create_key()) == public_key_bytes(key)


def test_key_info(config: Path) -> None:
    key_id, public_key, path = key_info(load_or_create_key())
    public = base64.b64decode(public_key)
    assert len(public) == 32 and key_id == key_id_for(public)
    assert path == str(config / "signing-key.pem")
    assert verify_report(sign_report({"format": "x"}, load_or_create_key()), expected_key_id=key_id).valid


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_key_readable_or_writable_by_others_is_refused(config: Path, loose: int) -> None:
    load_or_create_key()
    path = config / "signing-key.pem"
    path.chmod(loose)
    with pytest.raises(KeyFileError) as caught:
        load_or_create_key()
    message = str(caught.value)
    assert message == (
        f"{path}: the signing key is accessible by group or others "
        f"(mode {loose:04o}); run: chmod 600 {path}"
    )
    path.chmod(0o600)
    assert load_or_create_key()


def test_generate_refuses_to_replace_without_force(config: Path) -> None:
    first = public_key_bytes(load_or_create_key())
    with pytest.raises(KeyFileError, match="already exists; use --force"):
        generate_key()
    assert public_key_bytes(load_or_create_key()) == first
    second = public_key_bytes(generate_key(force=True))
    assert second != first
    assert public_key_bytes(load_or_create_key()) == second
    assert mode(config / "signing-key.pem") == 0o600


def test_generate_creates_when_absent(config: Path) -> None:
    key = generate_key()
    assert public_key_bytes(load_or_create_key()) == public_key_bytes(key)


@pytest.mark.parametrize(
    "content",
    [
        b"not a key",
        b"",
        generate_private_key(SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
    ],
)
def test_unusable_key_file_gives_one_line_error(config: Path, content: bytes) -> None:
    config.mkdir(parents=True)
    path = config / "signing-key.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError, match=r"not an unencrypted PKCS#8 PEM Ed25519 private key") as caught:
        load_or_create_key()
    assert "\n" not in str(caught.value)


def test_key_path_that_is_a_directory_is_refused(config: Path) -> None:
    (config / "signing-key.pem").mkdir(parents=True)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_key()


def test_unwritable_config_dir_gives_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PROBE_CONFIG_DIR", str(blocker / "probe"))
    with pytest.raises(KeyFileError, match=r"cannot create the signing key: Not a directory$"):
        generate_key()
