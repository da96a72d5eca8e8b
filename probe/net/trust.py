"""Which certificate authorities the TLS and HTTPS checks trust."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from probe.errors import InputError


@dataclass(frozen=True, slots=True)
class TrustStore:
    """The system store, or the CAs of a ``--ca-bundle`` PEM file."""

    ca_bundle: str | None = None

    @classmethod
    def from_bundle(cls, path: str) -> TrustStore:
        """A store of ``path``'s CAs; ValueError (one line) if it does not load."""
        store = cls(path)
        store.context()
        return store

    def context(self) -> ssl.SSLContext:
        """A fresh verifying client context.

        Fresh each time because callers set per-connection state on it
        (ALPN protocols).
        """
        try:
            return ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise InputError(f"--ca-bundle {self.ca_bundle}: cannot load: {exc}") from None
