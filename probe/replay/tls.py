"""A TLS handshake rebuilt from the two byte streams of a connection.

Fed in capture order, the tracker follows the handshake as each side saw
it: ClientHello (SNI, ALPN offered), ServerHello (version, cipher),
certificates and alerts where they travel in clear (TLS 1.2, and anything
before a TLS 1.3 ServerHello), and whether the client finished the
handshake. That last fact is the client's verdict on the server: a client
sends its Finished only after it accepted the certificate (RFC 8446
section 4.4.4; RFC 5246 section 7.4.9), and it sends an alert instead
when it did not.

TLS 1.3 encrypts everything after the ServerHello. With a key log the
tracker decrypts it (``probe.replay.tlskeys``) and reads the certificate,
the chosen ALPN, the alerts and the HTTP inside. Without one it still
tells the client's Finished from an alert by the record's size: an
encrypted alert is 2 bytes of alert, 1 of content type and a 16-byte AEAD
tag (section 5.2), 19 bytes in all, while a Finished carries a 32- or
48-byte MAC. TLS 1.2 encrypts what follows each side's ChangeCipherSpec:
with the master secret from the key log the tracker reads the alerts and
the HTTP there too (AEAD suites).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from probe.replay import tlskeys
from probe.replay.records import AlertSeen, Chunk, HTTPExchange, TLSFacts
from probe.wire import WireError
from probe.wire.tls import (
    TLS13,
    ClientHello,
    ContentType,
    Handshake,
    HandshakeReader,
    HandshakeType,
    Record,
    RecordReader,
    ServerHello,
    parse_alert,
    parse_certificate,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
)

# TLSInnerPlaintext of an alert under an AEAD with a 16-byte tag.
ENCRYPTED_ALERT_LENGTH = 2 + 1 + 16


class Inner(Protocol):
    """What reads the application data (``probe.replay.http.HTTPTracker``,
    or ``probe.replay.chunks.ChunkLog`` for SSTP)."""

    def client_data(self, t: float, data: bytes) -> None: ...

    def server_data(self, t: float, data: bytes) -> None: ...

    def server_eof(self, t: float) -> None: ...

    def outcome(self) -> tuple[None, tuple[HTTPExchange, ...], tuple[Chunk, ...]]: ...


# Chooses the reader of the application data from its first bytes (and
# whether the client sent them).
InnerChooser = Callable[[bool, bytes], Inner]


@dataclass(slots=True)
class _Side:
    name: str  # "client" or "server"
    records: RecordReader = field(default_factory=RecordReader)
    handshake: HandshakeReader = field(default_factory=HandshakeReader)
    # Handshake messages that travel encrypted (TLS 1.3), once decrypted.
    sealed_handshake: HandshakeReader = field(default_factory=HandshakeReader)
    encrypted: bool = False  # records from here on are protected
    finished: bool = False
    decryptor: tlskeys.RecordDecryptor | tlskeys.Record12Decryptor | None = None
    # TLS 1.2: the keys this side switches to at its ChangeCipherSpec.
    pending: tlskeys.Record12Decryptor | None = None
    app_bytes: int = 0


class TLSTracker:
    """Feed it both directions of one connection in capture order."""

    def __init__(self, keys: tlskeys.KeyLog | None, inner: InnerChooser | None = None) -> None:
        self._keys = keys
        self._choose_inner = inner
        self._inner: Inner | None = None
        self._client = _Side("client")
        self._server = _Side("server")
        self._client_hello: ClientHello | None = None
        self._t_client_hello: float | None = None
        self._server_hello: ServerHello | None = None
        self._t_server_hello: float | None = None
        self._hello_retry = False
        self._certificates: tuple[bytes, ...] = ()
        self._alpn: str | None = None
        self._alerts: list[AlertSeen] = []
        self._t_done: float | None = None
        self._decrypted = False
        self.error: str | None = None

    # -- input ---------------------------------------------------------------

    @property
    def wants_data(self) -> bool:
        if self.error is not None:
            return False
        if self._t_done is None or self._decrypting:
            return True
        # Handshake over and nothing to decrypt: once both sides have sent
        # application data there is nothing more to learn.
        return not (self._client.app_bytes and self._server.app_bytes)

    @property
    def _decrypting(self) -> bool:
        return self._client.decryptor is not None or self._server.decryptor is not None

    def data(self, from_client: bool, t: float, data: bytes, ttl: int, ip_id: int | None) -> None:
        side = self._client if from_client else self._server
        try:
            for record in side.records.feed(data):
                self._record(side, t, record)
        except WireError as exc:
            self.error = f"{side.name}: {exc}"

    def eof(self, from_client: bool, t: float) -> None:
        if not from_client and self._inner is not None:
            self._inner.server_eof(t)

    # -- records ---------------------------------------------------------------

    def _record(self, side: _Side, t: float, record: Record) -> None:
        kind = record.content_type
        if kind == ContentType.CHANGE_CIPHER_SPEC:
            # TLS 1.2: what follows is protected. TLS 1.3 sends it only for
            # middlebox compatibility (appendix D.4) and it means nothing.
            if not self._tls13:
                side.encrypted = True
                side.decryptor, side.pending = side.pending, None
            return
        if kind == ContentType.ALERT and len(record.fragment) == 2:
            self._alerts.append(AlertSeen(t, side.name, parse_alert(record.fragment)))
            return
        if not side.encrypted:
            if kind == ContentType.HANDSHAKE:
                for message in side.handshake.feed(record.fragment):
                    self._clear_message(side, t, message)
            return
        if self._tls13:
            self._sealed13(side, t, record)
        else:
            self._sealed12(side, t, record)

    def _clear_message(self, side: _Side, t: float, message: Handshake) -> None:
        kind = message.msg_type
        if kind == HandshakeType.CLIENT_HELLO and side is self._client:
            client_hello = parse_client_hello(message.body)
            if self._client_hello is None:  # a second one follows a HelloRetryRequest
                self._client_hello, self._t_client_hello = client_hello, t
        elif kind == HandshakeType.SERVER_HELLO and side is self._server:
            server_hello = parse_server_hello(message.body)
            if server_hello.hello_retry:
                self._hello_retry = True
                return
            self._server_hello, self._t_server_hello = server_hello, t
            self._alpn = server_hello.alpn
            if server_hello.version == TLS13:
                # Section 2: everything after the ServerHello is protected.
                self._client.encrypted = self._server.encrypted = True
                self._start_decryption(server_hello)
            else:
                self._prepare_decryption12(server_hello)
        elif kind == HandshakeType.CERTIFICATE and side is self._server:
            self._certificates = parse_certificate(message.body, tls13=False)

    @property
    def _tls13(self) -> bool:
        return self._server_hello is not None and self._server_hello.version == TLS13

    def _sealed12(self, side: _Side, t: float, record: Record) -> None:
        """TLS 1.2 after ChangeCipherSpec: the first record is Finished
        (RFC 5246 section 7.4.9); alerts and data are read when the keys are known."""
        opened = self._open(side, record)
        kind = record.content_type
        if kind == ContentType.HANDSHAKE and not side.finished:
            side.finished = True
            if self._client.finished and self._server.finished:
                self._t_done = t
        elif kind == ContentType.ALERT:
            self._alerts.append(AlertSeen(t, side.name, parse_alert(opened[1][:2]) if opened else None))
        elif kind == ContentType.APPLICATION_DATA:
            if opened is None:
                side.app_bytes += len(record.fragment)
            else:
                side.app_bytes += len(opened[1])
                self._application(side, t, opened[1])

    def _sealed13(self, side: _Side, t: float, record: Record) -> None:
        if record.content_type != ContentType.APPLICATION_DATA:
            return
        opened = self._open(side, record)
        if opened is None:
            self._sized(side, t, record)
        else:
            self._opened(side, t, *opened)

    def _open(self, side: _Side, record: Record) -> tuple[int, bytes] | None:
        """(content type, content) of a protected record, None without its keys."""
        if side.decryptor is None:
            return None
        header = bytes([record.content_type]) + record.version.to_bytes(2, "big") + len(
            record.fragment
        ).to_bytes(2, "big")
        try:
            return side.decryptor.open(header, record.fragment)
        except tlskeys.DecryptError:
            # Wrong or missing keys for this record: fall back to sizes.
            for each in (self._client, self._server):
                each.decryptor = each.pending = None
            self._decrypted = False
            return None

    def _sized(self, side: _Side, t: float, record: Record) -> None:
        """Without keys: the client's first protected record tells the story."""
        if self._t_done is not None:
            side.app_bytes += len(record.fragment)
        elif side is self._client:
            if len(record.fragment) == ENCRYPTED_ALERT_LENGTH:
                self._alerts.append(AlertSeen(t, "client", None))
            else:
                self._t_done = t

    def _opened(self, side: _Side, t: float, inner: int, content: bytes) -> None:
        if inner == ContentType.ALERT:
            self._alerts.append(AlertSeen(t, side.name, parse_alert(content[:2])))
        elif inner == ContentType.HANDSHAKE:
            for message in side.sealed_handshake.feed(content):
                self._sealed_message(side, t, message)
        elif inner == ContentType.APPLICATION_DATA:
            side.app_bytes += len(content)
            self._application(side, t, content)

    def _sealed_message(self, side: _Side, t: float, message: Handshake) -> None:
        kind = message.msg_type
        if side is self._server and kind == HandshakeType.ENCRYPTED_EXTENSIONS:
            self._alpn = parse_encrypted_extensions(message.body)
        elif side is self._server and kind == HandshakeType.CERTIFICATE:
            self._certificates = parse_certificate(message.body, tls13=True)
        elif kind == HandshakeType.FINISHED and not side.finished:
            side.finished = True
            if side is self._client:
                self._t_done = t
            self._switch_to_traffic_keys(side)

    def _application(self, side: _Side, t: float, content: bytes) -> None:
        if self._choose_inner is None or self._alpn not in (None, "http/1.1"):
            return
        if self._inner is None:
            self._inner = self._choose_inner(side is self._client, content)
        if side is self._client:
            self._inner.client_data(t, content)
        else:
            self._inner.server_data(t, content)

    # -- keys ----------------------------------------------------------------

    def _start_decryption(self, hello: ServerHello) -> None:
        """Handshake keys, each side on its own: a client that rejects the
        certificate never derives (nor logs) its own handshake secret."""
        if self._keys is None or self._client_hello is None:
            return
        if not tlskeys.supported(hello.cipher_suite):
            return
        secrets = self._keys.secrets(self._client_hello.random)
        for side, label in ((self._client, tlskeys.CLIENT_HANDSHAKE),
                            (self._server, tlskeys.SERVER_HANDSHAKE)):
            if label in secrets:
                side.decryptor = tlskeys.RecordDecryptor(hello.cipher_suite, secrets[label])
                self._decrypted = True

    def _prepare_decryption12(self, hello: ServerHello) -> None:
        """TLS 1.2: both sides' keys from the master secret, used from each
        side's ChangeCipherSpec on."""
        if self._keys is None or self._client_hello is None:
            return
        if not tlskeys.supported12(hello.cipher_suite):
            return
        secret = self._keys.secrets(self._client_hello.random).get(tlskeys.MASTER_SECRET)
        if secret is None:
            return
        self._client.pending, self._server.pending = tlskeys.decryptors12(
            hello.cipher_suite, secret, self._client_hello.random, hello.random
        )
        self._decrypted = True

    def _switch_to_traffic_keys(self, side: _Side) -> None:
        """Section 7.1: after its Finished, a side uses its traffic secret."""
        assert self._client_hello is not None and self._server_hello is not None
        label = tlskeys.CLIENT_TRAFFIC if side is self._client else tlskeys.SERVER_TRAFFIC
        secret = self._keys.secrets(self._client_hello.random).get(label) if self._keys else None
        side.decryptor = (
            tlskeys.RecordDecryptor(self._server_hello.cipher_suite, secret) if secret else None
        )

    # -- output --------------------------------------------------------------

    def facts(self) -> TLSFacts:
        return TLSFacts(
            client_hello=self._client_hello,
            t_client_hello=self._t_client_hello,
            server_hello=self._server_hello,
            t_server_hello=self._t_server_hello,
            hello_retry=self._hello_retry,
            certificates=self._certificates,
            alpn=self._alpn,
            alerts=tuple(self._alerts),
            t_done=self._t_done,
            app_bytes_client=self._client.app_bytes,
            app_bytes_server=self._server.app_bytes,
            decrypted=self._decrypted,
            error=self.error,
        )

    def outcome(self) -> tuple[TLSFacts, tuple[HTTPExchange, ...], tuple[Chunk, ...]]:
        _, http, chunks = self._inner.outcome() if self._inner is not None else (None, (), ())
        return self.facts(), http, chunks


def first_fatal(alerts: tuple[AlertSeen, ...], by: str) -> AlertSeen | None:
    """The first fatal (or unreadable) alert a side sent."""
    for seen in alerts:
        if seen.by == by and (seen.alert is None or seen.alert.fatal):
            return seen
    return None

