"""What the probe knows of each VPN protocol, in one place for everyone who needs it.

* :mod:`probe.vpn.registry`: one entry per protocol (its codec, the
  conversation that speaks it over each transport, the keys its server
  demands), consulted by the test-list loader, the live check, the replay
  and the lab;
* :mod:`probe.vpn.conversations`: each protocol's first exchange, bytes in
  and meaning out, and how to tell its first message in a capture;
* :mod:`probe.vpn.recorder`: what a check records of an exchange, live
  (:mod:`probe.net.vpn`) or replayed (:mod:`probe.replay.handshake`).

Sans-I/O: no sockets, no run clock; imports model and wire only.
"""
