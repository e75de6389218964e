"""The SCP's runtime controls end to end on the real Redis: API -> control hash -> component.

An admin drains one WDS replica through ``POST /api/admin/runtime/widget-service/drain``: the
order lands in the control hash, the replica's :class:`~mdp_runtime.RuntimeControl` applies it
and its clients are closed with 1001; the other replica is untouched. Pinned around it: the
role and CSRF checks, the audit record of every call (unknown commands included), clear 4xx
errors for bad input, and the listing of the orders in force.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.mdp_scp.conftest import PASSWORDS, make_settings, make_users

from mdp_cache.control import read_desired
from mdp_runtime import RuntimeControl
from mdp_scp import ControlPlane

from .test_wds_server import ServerFactory, closed_with, make_server, open_client

__all__ = ["make_server"]  # a fixture used below

Client = TestClient[web.Request, web.Application]


class Revocations:
    async def zadd(self, name: str, mapping: dict[str, float]) -> int:
        return len(mapping)

    async def zremrangebyscore(self, name: str, min: float, max: float) -> int:
        return 0


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_db_url)
    yield client
    await client.aclose()


@pytest.fixture
def plane(redis: aioredis.Redis) -> ControlPlane:
    return ControlPlane(make_settings(), users=make_users(), redis=redis, revocations=Revocations())


async def client_as(plane: ControlPlane, user: str) -> tuple[Client, dict[str, str]]:
    client: Client = TestClient(TestServer(plane.app))
    await client.start_server()
    page = await (await client.get("/login")).text()
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/login",
        data={"user": user, "password": PASSWORDS[user], "csrf": csrf},
        allow_redirects=False,
    )
    assert response.status == 303
    me = await (await client.get("/api/me")).json()
    return client, {"X-CSRF-Token": me["csrf_token"]}


async def call(client: Client, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    response = await client.post(path, headers=headers, **kw)
    return response.status, await response.json()


async def test_an_admin_drains_one_wds_replica_through_the_api(
    plane: ControlPlane, redis: aioredis.Redis, make_server: ServerFactory
) -> None:
    admin, headers = await client_as(plane, "admin")
    try:
        first, second = await make_server(), await make_server()
        controls = [
            RuntimeControl(redis, "widget-service", name, server.set_runtime_state)
            for name, server in (("wds-a", first), ("wds-b", second))
        ]
        ws_first, ws_second = await open_client(first), await open_client(second)

        status, body = await call(
            admin, "/api/admin/runtime/widget-service/drain", headers, json={"instance": "wds-a"}
        )
        assert status == 200
        assert body == {
            "component": "widget-service",
            "command": "drain",
            "state": "draining",
            "instance": "wds-a",
        }
        assert [await c.check() for c in controls] == ["draining", "running"]
        assert await closed_with(ws_first) == 1001
        assert ws_first.close_reason == "draining"
        await ws_second.ping()

        listing = await (await admin.get("/api/admin/runtime")).json()
        orders = listing["components"]["widget-service"]["orders"]
        assert list(orders) == ["wds-a"]
        assert (orders["wds-a"]["state"], orders["wds-a"]["by"]) == ("draining", "admin")
        assert listing["components"]["processor"]["commands"] == {
            "pause": "paused",
            "resume": "running",
        }

        status, _ = await call(admin, "/api/admin/runtime/widget-service/resume", headers)
        assert status == 200  # no body: every instance
        assert [await c.check() for c in controls] == ["running", "running"]
        assert list(await read_desired(redis, "widget-service")) == ["*"]  # older ones dropped
        await ws_second.close()

        audit = await (await admin.get("/api/admin/audit?action=runtime.")).json()
        assert [(e["action"], e["target"], e["result"], e["detail"]) for e in audit["entries"]] == [
            ("runtime.widget-service.resume", "widget-service", "ok", {"instance": "*"}),
            ("runtime.widget-service.drain", "widget-service", "ok", {"instance": "wds-a"}),
        ]
    finally:
        await admin.close()


async def test_pause_and_resume_all_processors_and_scanners(
    plane: ControlPlane, redis: aioredis.Redis
) -> None:
    admin, headers = await client_as(plane, "admin")
    try:
        for component in ("processor", "scanner"):
            assert (await call(admin, f"/api/admin/runtime/{component}/pause", headers))[0] == 200
            orders = await read_desired(redis, component)
            assert [(k, o.state, o.by) for k, o in orders.items()] == [("*", "paused", "admin")]
        health = await (await admin.get("/api/health")).json()
        assert health["controls"]["runtime"]["scanner"] == {"pause": "paused", "resume": "running"}
    finally:
        await admin.close()


async def test_roles_csrf_and_bad_input_get_clear_errors_and_are_audited(
    plane: ControlPlane, redis: aioredis.Redis
) -> None:
    admin, headers = await client_as(plane, "admin")
    viewer, viewer_headers = await client_as(plane, "viewer")
    try:
        path = "/api/admin/runtime/processor/pause"
        assert (await call(viewer, path, viewer_headers))[0] == 403
        assert (await viewer.get("/api/admin/runtime")).status == 403
        assert (await call(admin, path, {}))[0] == 403  # no CSRF token
        status, body = await call(admin, "/api/admin/runtime/processor/drain", headers)
        assert status == 404
        assert body["error"].startswith("no runtime command 'drain' for 'processor'; known:")
        status, body = await call(admin, "/api/admin/runtime/database/pause", headers)
        assert status == 404
        status, body = await call(admin, path, headers, json={"instance": "a b"})
        assert (status, body["error"]) == (400, "an instance is '*' or a heartbeat instance id")
        status, body = await call(admin, path, headers, json={"instance": 3})
        assert status == 400
        status, body = await call(admin, path, headers, json={"host": "x"})
        assert status == 400
        json_headers = {**headers, "Content-Type": "application/json"}
        status, _ = await call(admin, path, json_headers, data=b"{")
        assert status == 400
        assert await read_desired(redis, "processor") == {}  # nothing was ordered
        audit = await (await admin.get("/api/admin/audit?action=runtime.")).json()
        assert [(e["action"], e["result"]) for e in audit["entries"]] == [
            ("runtime.database.pause", "unknown"),
            ("runtime.processor.drain", "unknown"),
        ]
        assert plane.metrics.bad_requests.labels("unknown_command")._value.get() == 2
    finally:
        await admin.close()
        await viewer.close()


async def test_an_unreachable_cache_is_a_503_and_nothing_is_audited(redis_db_url: str) -> None:
    down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    plane = ControlPlane(make_settings(), users=make_users(), redis=down, revocations=Revocations())
    admin, headers = await client_as(plane, "admin")
    try:
        response = await admin.post("/api/admin/runtime/scanner/pause", headers=headers)
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        audit = await (await admin.get("/api/admin/audit?action=runtime.")).json()
        assert audit["entries"] == []  # rolled back with the failed order
    finally:
        await admin.close()
        await down.aclose()
