from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from mdp_cache.keys import KEY_HEARTBEAT
from mdp_core.clock import ManualClock
from mdp_scp import ControlPlane, HeartbeatReader, parse_heartbeat

from .conftest import PASSWORDS, FakeHeartbeatRedis, LoginFn

NOW = 1_790_000_000.0


def beat(age: float, **extra: Any) -> str:
    document: dict[str, Any] = {
        "service": "listener",
        "instance": "pod-1",
        "pid": 7,
        "version": "0.1.0",
        "status": "running",
        "ts_ms": int((NOW - age) * 1000),
        "figures": {"messages": 1200, "lag_ms": 4},
    }
    document.update(extra)
    return json.dumps(document)


def test_a_recent_heartbeat_is_fresh_and_carries_its_figures() -> None:
    health = parse_heartbeat("mdp:heartbeat:listener:pod-1", beat(2.0), NOW, stale_after=15)
    assert not health.stale
    assert health.age_seconds is not None
    assert abs(health.age_seconds - 2.0) < 0.01
    assert health.figures == {"messages": 1200, "lag_ms": 4}
    assert health.as_json()["status"] == "running"


def test_an_old_heartbeat_is_stale_even_though_its_key_still_exists() -> None:
    health = parse_heartbeat("mdp:heartbeat:listener:pod-1", beat(16.0), NOW, stale_after=15)
    assert health.stale
    assert health.as_json()["status"] == "stale"
    assert health.as_json()["reported_status"] == "running"


def test_a_heartbeat_with_its_own_interval_is_judged_by_it() -> None:
    fast = beat(3.0, interval_s=1.0)
    assert parse_heartbeat("k", fast, NOW, stale_after=15).stale
    slow = beat(50.0, interval_s=30.0)
    assert not parse_heartbeat("k", slow, NOW, stale_after=15).stale


def test_a_stopped_component_keeps_its_status() -> None:
    health = parse_heartbeat("k", beat(1.0, status="stopped"), NOW, stale_after=15)
    assert health.as_json()["status"] == "stopped"


def test_seconds_timestamps_are_accepted() -> None:
    document = json.loads(beat(0))
    del document["ts_ms"]
    document["ts"] = NOW - 20
    health = parse_heartbeat("k", json.dumps(document), NOW, stale_after=15)
    assert health.stale
    assert health.age_seconds is not None
    assert abs(health.age_seconds - 20) < 0.01


def test_garbage_is_reported_not_raised() -> None:
    for raw in ("{not json", "[1, 2]", b"\xff\xfe"):
        health = parse_heartbeat("mdp:heartbeat:scanner:a", raw, NOW, stale_after=15)
        assert health.stale
        assert health.error
        assert health.service == "scanner"
        assert health.instance == "a"
    missing_time = parse_heartbeat("k", json.dumps({"service": "x"}), NOW, stale_after=15)
    assert missing_time.stale
    assert missing_time.age_seconds is None


async def test_the_reader_lists_every_component_sorted() -> None:
    redis = FakeHeartbeatRedis(
        {
            KEY_HEARTBEAT.name(component="scanner", instance="b"): beat(
                1, service="scanner", instance="b"
            ),
            KEY_HEARTBEAT.name(component="listener", instance="a"): beat(30, instance="a"),
            "mdp:other:key": "{}",
        }
    )
    found = await HeartbeatReader(redis, stale_after=15).read(NOW)
    assert [(c.service, c.instance, c.stale) for c in found] == [
        ("listener", "a", True),
        ("scanner", "b", False),
    ]


PlaneFactory = Callable[..., ControlPlane]
ClientFactory = Callable[[ControlPlane], Awaitable[TestClient[web.Request, web.Application]]]


def beat_now(heartbeats: FakeHeartbeatRedis, clock: ManualClock, **extra: object) -> None:
    """A running processor's heartbeat, sent at the clock's now."""
    now_ms = clock.now_ns() // 1_000_000
    beat = {"service": "processor", "instance": "p1", "status": "running", "ts_ms": now_ms}
    heartbeats.values[KEY_HEARTBEAT.name(component="processor", instance="p1")] = json.dumps(
        beat | extra
    )


async def test_health_api_shows_staleness_to_viewers(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    heartbeats: FakeHeartbeatRedis,
    clock: ManualClock,
) -> None:
    beat_now(heartbeats, clock)
    client = await client_factory(plane_factory(heartbeat_stale_seconds=10))
    assert await login(client, "viewer", PASSWORDS["viewer"]) == 303
    body = await (await client.get("/api/health")).json()
    assert [c["status"] for c in body["components"]] == ["running"]
    clock.advance(11)
    body = await (await client.get("/api/health")).json()
    assert [c["status"] for c in body["components"]] == ["stale"]
    assert body["components"][0]["stale"] is True


async def test_only_admins_see_a_components_figures(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    heartbeats: FakeHeartbeatRedis,
    clock: ManualClock,
) -> None:
    beat_now(heartbeats, clock, figures={"events": 5, "queue": "mdq.a.0"})
    plane = plane_factory()
    seen: dict[str, dict[str, Any]] = {}
    for user in ("viewer", "admin"):
        client = await client_factory(plane)
        assert await login(client, user, PASSWORDS[user]) == 303
        body = await (await client.get("/api/health")).json()
        seen[user] = body["components"][0]
    assert seen["admin"]["figures"] == {"events": 5, "queue": "mdq.a.0"}
    assert "figures" not in seen["viewer"]
    # Everything else on the row is the admin's row.
    assert seen["viewer"] == {k: v for k, v in seen["admin"].items() if k != "figures"}
    assert seen["viewer"]["state"] == "running"


class BrokenRedis(FakeHeartbeatRedis):
    async def mget(self, keys: Any, *args: Any) -> list[Any]:
        raise ConnectionError("redis is down")


async def test_a_redis_outage_is_shown_not_raised(
    clock: ManualClock,
    client_factory: ClientFactory,
    login: LoginFn,
) -> None:
    from .conftest import make_settings, make_users

    redis = BrokenRedis({KEY_HEARTBEAT.name(component="wds", instance="w"): beat(1)})
    plane = ControlPlane(make_settings(), users=make_users(), clock=clock, redis=redis)
    client = await client_factory(plane)
    assert await login(client, "viewer", PASSWORDS["viewer"]) == 303
    response = await client.get("/api/health")
    assert response.status == 200
    body = await response.json()
    assert body["components"] == []
    assert body["error"] == "cannot read heartbeats: ConnectionError"


def test_a_nested_heartbeat_is_unreadable_not_a_crash() -> None:
    key = KEY_HEARTBEAT.name(component="listener", instance="pod-9")
    health = parse_heartbeat(key, "[" * 100_000, NOW, stale_after=15)
    assert health.status == "unreadable"
    assert health.stale
