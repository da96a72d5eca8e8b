"""The VPN handshake check: one protocol's first exchange with one address.

The conversation (:mod:`probe.vpn.conversations`, chosen by the registry)
says what to send and what arrived, and the recorder
(:mod:`probe.vpn.recorder`, which the replay shares) records every message
both ways; this module moves the bytes through the dialer (so the address
guard applies) and keeps time.

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

from probe.model import Failure, Observation, Target, TCPObservation
from probe.net.clock import Clock
from probe.net.dialer import Dialer, close_stream, send
from probe.net.errors import CheckError, failure_from_exception
from probe.vpn.conversations import Conversation
from probe.vpn.recorder import HandshakeRecorder
from probe.vpn.registry import conversation_for

__all__ = ["FIRST_RESEND", "handshake"]

FIRST_RESEND = 1.0  # seconds before the first resend of an unanswered datagram


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
    record = HandshakeRecorder(target, conversation.transport, keys)
    t0 = clock.now()
    observations: list[Observation] = []
    try:
        if conversation.transport == "udp":
            async with asyncio.timeout(timeout):
                failure = await _datagrams(conversation, address, port, dialer, clock, record)
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
                failure = await _stream(target, conversation, reader, writer, clock, record)
    except TimeoutError:
        failure = Failure.GENERIC_TIMEOUT
    except CheckError as exc:
        failure = exc.failure
    except Exception as exc:
        failure = failure_from_exception(exc)
    observations.append(record.observation(address, port, t0, clock.now(), failure))
    return tuple(observations)


async def _datagrams(
    conversation: Conversation, address: str, port: int, dialer: Dialer, clock: Clock,
    record: HandshakeRecorder,
) -> Failure | None:
    endpoint = await dialer.open_udp(address, port)
    try:
        message = conversation.opening()
        wait = FIRST_RESEND
        while True:
            endpoint.send(message)
            record.sent(clock.now(), len(message))
            resend_at = asyncio.get_running_loop().time() + wait
            while (left := resend_at - asyncio.get_running_loop().time()) > 0:
                try:
                    datagram = await endpoint.recv(left)
                except TimeoutError:
                    break
                for heard in conversation.hear(datagram):
                    if record.heard(clock.now(), heard):
                        return record.failure
            wait *= 2
            message = conversation.resend()
    finally:
        endpoint.close()


async def _stream(
    target: Target, conversation: Conversation, reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter, clock: Clock, record: HandshakeRecorder,
) -> Failure | None:
    try:
        if conversation.tls:
            # SSTP servers commonly present self-signed certificates: the check
            # asks whether the protocol gets through, not who the server is.
            await writer.start_tls(_unverified(),
                                   server_hostname=conversation.server_name(target))
        first = conversation.opening()
        record.sent(clock.now(), len(first))
        await send(writer, first)
        while True:
            data = await reader.read(65536)
            if not data:
                return Failure.EOF
            for heard in conversation.hear(data):
                if record.heard(clock.now(), heard):
                    return record.failure
                if heard.reply:
                    record.sent(clock.now(), len(heard.reply))
                    await send(writer, heard.reply)
    finally:
        await close_stream(writer)


def _unverified() -> ssl.SSLContext:
    # create_default_context honours SSLKEYLOGFILE, so a capture can be replayed.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
