"""probe.replay.match: the rules it keeps beside the live client's."""

from __future__ import annotations

import httpx

from probe.replay.match import _REDIRECTS


def test_replay_follows_the_statuses_the_live_client_follows() -> None:
    followed = {
        status for status in range(100, 600)
        if httpx.Response(status, headers={"location": "/next"}).has_redirect_location
    }
    assert followed == _REDIRECTS
