"""What a VPN handshake check records of one exchange, live or replayed.

The live driver (:mod:`probe.net.vpn`) calls the recorder as it sends and
reads; the replay (:mod:`probe.replay.handshake`) calls it in capture
order. So both keep one set of rules:

* every message is recorded both ways, with its time and size; a server's
  by the name the conversation gives it;
* a client's message is named by what it is: the conversation's opening
  (over UDP every datagram is the opening or a resend of it, and each is
  an attempt), then, over TCP, the reply a server's message asked for
  (SSTP's call connect request after HTTP 200); a write that no message
  asked for is the rest of the previous one, which a capture may show in
  several segments;
* the exchange is over at the first message that answers us (it names the
  reply) or that is not the protocol at all (``unexpected-reply``).
"""

from __future__ import annotations

from collections.abc import Mapping

from probe.model import Failure, HandshakeMessage, HandshakeObservation, Target
from probe.vpn.conversations import Heard
from probe.vpn.registry import answerable, conversation_class

__all__ = ["HandshakeRecorder"]


class HandshakeRecorder:
    """The messages of one exchange with ``target``'s server, and how it ended."""

    __slots__ = ("_due", "_opening", "answerable", "attempts", "failure", "messages", "reply",
                 "target", "transport")

    def __init__(self, target: Target, transport: str, keys: Mapping[str, str]) -> None:
        self.target = target
        self.transport = transport
        self.answerable = answerable(target, keys)
        self._opening = conversation_class(target).opening_name
        self.messages: list[HandshakeMessage] = []
        self.attempts = 0  # datagrams sent (over TCP the exchange is one attempt)
        self.reply: str | None = None
        self.failure: Failure | None = None  # once over: how (None: answered)
        self._due: list[str] = []  # replies the server's messages asked for, not yet sent

    def sent(self, t: float, size: int) -> None:
        """A client message of ``size`` bytes went out at ``t``."""
        first = not any(m.sent for m in self.messages)
        if self.transport == "udp":
            self.attempts += 1
        if first or self.transport == "udp":
            name = self._opening
        elif self._due:
            name = self._due.pop(0)
        else:
            last = max(i for i, m in enumerate(self.messages) if m.sent)
            message = self.messages[last]
            self.messages[last] = HandshakeMessage(message.t, True, message.name,
                                                   message.size + size)
            return
        self.messages.append(HandshakeMessage(t, True, name, size))

    def heard(self, t: float, heard: Heard) -> bool:
        """A server message arrived at ``t``; whether it ended the exchange
        (``failure`` says how)."""
        self.messages.append(HandshakeMessage(t, False, heard.name, heard.size))
        if heard.answered:
            self.reply = heard.name
            return True
        if heard.unexpected:
            self.failure = Failure.UNEXPECTED_REPLY
            return True
        if heard.reply_name:
            self._due.append(heard.reply_name)
        return False

    def observation(self, address: str, port: int, t0: float, t: float,
                    failure: Failure | None) -> HandshakeObservation:
        """The exchange with ``address``, from ``t0`` until it ended at ``t`` with ``failure``."""
        return HandshakeObservation(
            protocol=str(self.target.kind), transport=self.transport, address=address, port=port,
            t0=t0, t=round(t, 6), failure=failure, attempts=max(self.attempts, 1),
            reply=self.reply, answerable=self.answerable, messages=tuple(self.messages),
        )
