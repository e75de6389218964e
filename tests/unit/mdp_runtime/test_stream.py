from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from mdp_core.clock import LiveClock
from mdp_runtime import HealthServer, serve_stream


class Component:
    instance = "test-1"

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.streaming = False
        self.state = "idle"
        self.running = asyncio.Event()

    def status(self) -> Mapping[str, object]:
        return {"state": self.state}

    def upstream_readiness(self) -> tuple[bool, str]:
        return self.streaming, self.state

    def metrics_snapshot(self) -> Mapping[str, object]:
        return {"events": 1}

    async def run(self, stop: asyncio.Event) -> None:
        self.streaming, self.state = True, "streaming"
        self.running.set()
        if self.fail:
            raise RuntimeError("vendor exploded")
        await stop.wait()


class Broker:
    def __init__(self) -> None:
        self.connected = True
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def _serve(
    component: Component, broker: Broker, stop: asyncio.Event, ports: list[int]
) -> None:
    def mount(health: HealthServer) -> None:
        ports.append(0)
        health.add_control("GET", "/state", lambda _request: _state(component))

    await serve_stream(
        component, broker, stop, service="streamtest", version="0", health_host="127.0.0.1",
        health_port=0, control_token="token", mount_control=mount, heartbeat_redis_url=None,
        heartbeat_seconds=1.0, clock=LiveClock(),
    )  # fmt: skip


async def _state(component: Component) -> Mapping[str, object]:
    return {"state": component.state}


async def test_the_stream_runs_until_stop_and_the_broker_is_closed() -> None:
    component, broker, stop = Component(), Broker(), asyncio.Event()
    mounted: list[int] = []
    task = asyncio.create_task(_serve(component, broker, stop, mounted))
    await asyncio.wait_for(component.running.wait(), 5)
    assert mounted == [0]
    assert not broker.closed
    stop.set()
    await asyncio.wait_for(task, 5)
    assert broker.closed


async def test_the_broker_is_closed_even_when_the_stream_fails() -> None:
    broker = Broker()
    with pytest.raises(RuntimeError, match="vendor exploded"):
        await _serve(Component(fail=True), broker, asyncio.Event(), [])
    assert broker.closed
