"""The VPN handshake check: one protocol's first exchange with one address.

The conversation (:mod:`probe.net.handshakes`) says what to send and what
arrived; this module moves the bytes through the dialer (so the address
guard applies), keeps time, and records every message both ways.

* UDP: the first message is resent while nothing answers, after 1 s, then
  2 s, 4 s ... (as the protocols' own clients do) until ``timeout``;
  ``attempts`` counts the sends, so a reply that needed resends shows.
* TCP: the connect is its own observation (as for TLS), then the exchange;
  SSTP runs it inside TLS. A reset, a close or silence ends it.

Never raises for network trouble: the failure is in the observation.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from probe.model import (
    Failure,
    HandshakeMessage,
    HandshakeObservation,
    Observation,
    Target,
    TCPObservation,
)
from probe.net.clock import Clock
from probe.net.dialer import Dialer, close_stream, send
from probe.net.errors import CheckError, failure_from_exception
from probe.net.handshakes import Conversation, Heard, conversation_for

__all__ = ["FIRST_RESEND", "handshake"]

FIRST_RESEND = 1.0  # seconds before the first resend of an unanswered datagram


class _Record:
    """The messages of one exchange, and how it ended."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.messages: list[HandshakeMessage] = []
        self.attempts = 0
        self.reply: str | None = None

    def sent(self, name: str, data: bytes) -> None:
        self.messages.append(HandshakeMessage(self.clock.now(), True, name, len(data)))

    def heard(self, heard: Heard) -> Failure | None | bool:
        """Record ``heard``; True while the exchange goes on, else its failure (None: answered)."""
        self.messages.append(HandshakeMessage(self.clock.now(), False, heard.name, heard.size))
        if heard.answered:
            self.reply = heard.name
            return None
        if heard.unexpected:
            return Failure.UNEXPECTED_REPLY
        return True


async def handshake(
    target: Target,
    address: str,
    port: int,
    keys: Mapping[str, str],
    dialer: Dialer,
    clock: Clock,
    timeout: float,
) -> tuple[Observation, ...]:
    """The target's first exchange with ``address``: (TCP connect,) handshake."""
    conversation = conversation_for(target, port, keys)
    record = _Record(clock)
    t0 = clock.now()
    observations: list[Observation] = []
    try:
        if conversation.transport == "udp":
            async with asyncio.timeout(timeout):
                failure = await _datagrams(conversation, address, port, dialer, record)
        else:
            # The connect is bounded on its own and recorded whatever happens,
            # so a blackholed address reads tcp-timeout, not handshake-timeout.
            try:
                reader, writer = await dialer.open_tcp(address, port, timeout)
            except Exception as exc:
                failure = failure_from_exception(exc)
                observations.append(TCPObservation(address, port, t0, clock.now(), failure))
                raise CheckError(failure, "connect failed") from None
            observations.append(TCPObservation(address, port, t0, clock.now(), None))
            async with asyncio.timeout(timeout):
                failure = await _stream(conversation, reader, writer, record)
    except TimeoutError:
        failure = Failure.GENERIC_TIMEOUT
    except CheckError as exc:
        failure = exc.failure
    except Exception as exc:
        failure = failure_from_exception(exc)
    observations.append(HandshakeObservation(
        protocol=str(target.kind), transport=conversation.transport, address=address, port=port,
        t0=t0, t=clock.now(), failure=failure, attempts=max(record.attempts, 1),
        reply=record.reply, answerable=conversation.answerable, messages=tuple(record.messages),
    ))
    return tuple(observations)


async def _datagrams(
    conversation: Conversation, address: str, port: int, dialer: Dialer, record: _Record,
) -> Failure | None:
    endpoint = await dialer.open_udp(address, port)
    try:
        name, message = conversation.opening()
        wait = FIRST_RESEND
        while True:
            endpoint.send(message)
            record.attempts += 1
            record.sent(name, message)
            resend_at = asyncio.get_running_loop().time() + wait
            while (left := resend_at - asyncio.get_running_loop().time()) > 0:
                try:
                    datagram = await endpoint.recv(left)
                except TimeoutError:
                    break
                for heard in conversation.hear(datagram):
                    outcome = record.heard(heard)
                    if outcome is not True:
                        return outcome
            wait *= 2
            name, message = conversation.resend()
    finally:
        endpoint.close()


async def _stream(
    conversation: Conversation, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    record: _Record,
) -> Failure | None:
    try:
        if conversation.tls:
            # SSTP servers commonly present self-signed certificates: the check
            # asks whether the protocol gets through, not who the server is.
            await writer.start_tls(_unverified(), server_hostname=conversation.server_name)
        name, first = conversation.opening()
        record.attempts = 1
        record.sent(name, first)
        await send(writer, first)
        while True:
            data = await reader.read(65536)
            if not data:
                return Failure.EOF
            for heard in conversation.hear(data):
                outcome = record.heard(heard)
                if outcome is not True:
                    return outcome
                if heard.reply:
                    record.sent(heard.reply_name, heard.reply)
                    await send(writer, heard.reply)
    finally:
        await close_stream(writer)


def _unverified() -> ssl.SSLContext:
    # create_default_context honours SSLKEYLOGFILE, so a capture can be replayed.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
