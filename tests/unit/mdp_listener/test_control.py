from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from mdp_core.clock import ManualClock
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_listener import ListenerSettings, MassiveListener, mount_control
from mdp_queues import MemoryBus, Topology
from mdp_runtime import HealthServer

TOKEN = "control-token-for-tests"


@pytest.fixture
async def served() -> AsyncIterator[tuple[MassiveListener, str]]:
    clock = ManualClock(datetime(2026, 11, 21, 17, 0, tzinfo=UTC))
    bus = MemoryBus(Topology(), clock=clock)
    settings = load(ListenerSettings, {}, api_key=Secret("k"), feed="127.0.0.1:9", secure=False)
    listener = MassiveListener(
        settings, bus.publisher(), clock, Metrics("listener"), rng=random.Random(0)
    )
    server = HealthServer(
        "127.0.0.1",
        0,
        service="listener",
        version="test",
        metrics_snapshot=listener.metrics_snapshot,
        readiness={"upstream": lambda: listener.ready},
        control_token=TOKEN,
    )
    mount_control(server, listener)
    async with server:
        yield listener, server.url


async def call(
    method: str, url: str, json: object = None, token: str | None = TOKEN
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=json, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_subscriptions_can_be_read_and_replaced(
    served: tuple[MassiveListener, str],
) -> None:
    listener, url = served
    status, body = await call("PUT", f"{url}/control/subscriptions", {"topics": ["T.AAPL"]})
    assert (status, body) == (200, {"topics": ["T.AAPL"]})
    assert listener.subscriptions == ("T.AAPL",)
    status, body = await call("GET", f"{url}/control/subscriptions")
    assert body == {"topics": ["T.AAPL"]}


async def test_bad_requests_are_refused_with_a_reason(
    served: tuple[MassiveListener, str],
) -> None:
    listener, url = served
    status, body = await call("PUT", f"{url}/control/subscriptions", {"topics": ["ZZ.*"]})
    assert status == 400
    assert "ZZ.*" in str(body["error"])
    status, _ = await call("PUT", f"{url}/control/feed", {"feed": 7})
    assert status == 400
    assert listener.subscriptions == ("A.*", "AM.*", "T.*", "Q.*", "LULD.*")


async def test_control_needs_the_token(served: tuple[MassiveListener, str]) -> None:
    listener, url = served
    status, _ = await call("POST", f"{url}/control/stop", token="wrong")
    assert status in {401, 403}
    assert listener.enabled
    status, body = await call("POST", f"{url}/control/stop")
    assert (status, body) == (200, {"enabled": False})
    assert listener.status()["enabled"] is False
    feed = {"feed": "delayed.massive.com", "secure": True}
    status, body = await call("PUT", f"{url}/control/feed", feed)
    assert status == 200
    assert listener.feed == "delayed.massive.com"


@pytest.mark.parametrize(
    ("feed", "why"),
    [
        ({"feed": "evil.example:443", "secure": True}, "not allowed"),
        ({"feed": "127.0.0.1:8443", "secure": False}, "not allowed"),  # loopback, not listed
        ({"feed": "socket.massive.com"}, "not allowed"),  # no TLS: port 80 is not listed
        ({"feed": "socket.massive.com:443"}, "needs TLS"),  # the listener runs without TLS
        ({"feed": "socket.massive.com:443", "secure": False}, "needs TLS"),
    ],
)
async def test_a_feed_off_the_allow_list_is_refused_before_any_connection(
    served: tuple[MassiveListener, str], feed: dict[str, object], why: str
) -> None:
    listener, url = served
    status, body = await call("PUT", f"{url}/control/feed", feed)
    assert status == 400
    assert why in str(body["error"])
    assert listener.feed == "127.0.0.1:9"
    assert listener.sessions == 0


async def test_readiness_and_metrics_are_served(served: tuple[MassiveListener, str]) -> None:
    _, url = served
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/readyz") as response:
            assert response.status == 503  # not streaming
        async with session.get(f"{url}/metrics") as response:
            assert response.status == 200
            assert "mdp_listener" in await response.text()
