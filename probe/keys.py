"""The user's Ed25519 signing key, kept private on disk.

The key lives in ``$PROBE_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/probe``,
else ``~/.config/probe`` (XDG Base Directory spec), as ``signing-key.pem``:
unencrypted PKCS #8 PEM (RFC 5958, RFC 8410 for Ed25519), mode 0600 in a
0700 directory. Like OpenSSH with its identity files, we refuse a key that
group or others could read or write: it may already be copied, and a
signature made with it proves nothing.

Only the public half ever leaves this module in a report.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from probe.errors import InputError
from probe.files import write_private
from probe.sign import SigningKey, key_id_for, public_key_bytes

KEY_FILE = "signing-key.pem"
_MAX_KEY_FILE = 64 * 1024  # a PEM Ed25519 key is 119 bytes; refuse to slurp anything big


class KeyFileError(InputError):
    """The key file cannot be used; one line, with what to do about it."""


class KeyInfo(NamedTuple):
    key_id: str
    public_key: str  # base64 of the raw 32 bytes, as in report signatures
    path: str


def config_dir() -> Path:
    explicit = os.environ.get("PROBE_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "probe"
    return Path.home() / ".config" / "probe"


def key_path() -> Path:
    return config_dir() / KEY_FILE


def load_or_create_key() -> SigningKey:
    """The user's key, created on first use."""
    path = key_path()
    if not os.path.lexists(path):
        try:
            return _create(path, replace=False)
        except FileExistsError:
            pass  # another probe created it meanwhile: use that one
    return _load(path)


def generate_key(force: bool = False) -> SigningKey:
    """A new key; replacing an existing one only when ``force``."""
    path = key_path()
    if os.path.lexists(path) and not force:
        raise KeyFileError(
            f"{path}: a signing key already exists; use --force to replace it "
            "(its key id will no longer match your new reports)"
        )
    try:
        return _create(path, replace=force)
    except FileExistsError:
        raise KeyFileError(f"{path}: a signing key was created meanwhile; not replacing it") from None


def load_key() -> SigningKey:
    """The user's existing key; never creates one (``probe keys show``)."""
    path = key_path()
    if not os.path.lexists(path):
        raise KeyFileError(
            f"{path}: no signing key yet; probe run makes one on first use, or run: probe keys generate"
        )
    return _load(path)


def key_info(key: SigningKey) -> KeyInfo:
    """Key id, public key and file of the user's key."""
    public = public_key_bytes(key)
    return KeyInfo(key_id_for(public), base64.b64encode(public).decode("ascii"), str(key_path()))


def _load(path: Path) -> SigningKey:
    try:
        # O_NONBLOCK: a FIFO planted at the key's name must not hang us; it
        # changes nothing for the regular file we then insist on.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open the signing key: {exc.strerror}") from None
    try:
        # fstat the open file, not the name, so the checked file is the read one.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: the signing key is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: the signing key is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        data = os.read(fd, _MAX_KEY_FILE)
    finally:
        os.close(fd)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{path}: not an unencrypted PKCS#8 PEM Ed25519 private key; "
            "move it away and run: probe keys generate"
        )
    return key


def _create(path: Path, replace: bool) -> SigningKey:
    """Write a new key without ever exposing it, even for a moment
    (``probe.files.write_private``). When the name must not exist yet, a key
    another process just made there is never clobbered: FileExistsError.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_create(path, exc) from None
    try:
        write_private(path, pem, replace=replace)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _cannot_create(path, exc) from None
    return key


def _cannot_create(path: Path, exc: OSError) -> KeyFileError:
    return KeyFileError(f"{path}: cannot create the signing key: {exc.strerror or exc}")
