"""The replay's one error: a capture it cannot read at all."""

from __future__ import annotations

from probe.errors import InputError


class ReplayError(InputError):
    """A capture that cannot be replayed; one line naming the file and the
    byte offset or packet number where it went wrong.

    A capture that is damaged part-way is not an error: what was read
    before the damage is replayed and the damage becomes a warning.
    """
