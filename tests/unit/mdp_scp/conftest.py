"""Fixtures of the SCP unit tests: settings, a manual clock, fake heartbeats, logged-in clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mdp_core.clock import ManualClock
from mdp_core.settings import Secret, load
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters

WDS_SECRET = "test-wds-secret-0123456789"
# Cheap scrypt parameters keep the suite fast; the production default is exercised separately.
FAST = ScryptParameters(n=1 << 10, r=8, p=1)
PASSWORDS = {"admin": "admin-pass-1", "viewer": "viewer-pass-1"}

LoginFn = Callable[[TestClient[web.Request, web.Application], str, str], Awaitable[int]]


class FakeHeartbeatRedis:
    """The two Redis commands the heartbeat reader uses, over a dict."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})

    async def _keys(self, match: str | None) -> AsyncIterator[bytes]:
        pattern = re.compile("^" + re.escape(match or "*").replace(r"\*", ".*") + "$")
        for key in list(self.values):
            if pattern.match(key):
                yield key.encode()

    def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[Any]:
        del count
        return self._keys(match)

    async def mget(self, keys: Sequence[Any], *args: Any) -> list[Any]:
        del args
        names = [k.decode() if isinstance(k, bytes) else k for k in keys]
        return [self.values.get(name) for name in names]


class FakeRevocations:
    """The two sorted-set commands the revocation writer uses, over a dict."""

    def __init__(self) -> None:
        self.members: dict[str, float] = {}

    async def zadd(self, name: str, mapping: dict[str, float]) -> int:
        del name
        self.members.update(mapping)
        return len(mapping)

    async def zremrangebyscore(self, name: str, min: float, max: float) -> int:
        del name
        gone = [m for m, score in self.members.items() if min <= score <= max]
        for member in gone:
            del self.members[member]
        return len(gone)


def make_settings(**overrides: Any) -> ScpSettings:
    values: dict[str, Any] = {
        "port": 0,
        "database_url": Secret("sqlite:///:memory:"),
        "wds_token_secret": Secret(WDS_SECRET),
        "session_secret": Secret("test-session-secret-0123456789"),
        "wds_url": "ws://127.0.0.1:9/ws",
    }
    values.update(overrides)
    return load(ScpSettings, environ={}, **values)


def make_users() -> UserStore:
    return UserStore(
        [
            User("admin", "admin", hash_password(PASSWORDS["admin"], FAST)),
            User("viewer", "viewer", hash_password(PASSWORDS["viewer"], FAST)),
        ]
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))


@pytest.fixture
def heartbeats() -> FakeHeartbeatRedis:
    return FakeHeartbeatRedis()


@pytest.fixture
def revocations() -> FakeRevocations:
    return FakeRevocations()


@pytest.fixture
def plane_factory(
    clock: ManualClock, heartbeats: FakeHeartbeatRedis, revocations: FakeRevocations
) -> Callable[..., ControlPlane]:
    def build(**overrides: Any) -> ControlPlane:
        listener = overrides.pop("listener", None)
        news_listener = overrides.pop("news_listener", None)
        return ControlPlane(
            make_settings(**overrides),
            users=make_users(),
            clock=clock,
            redis=heartbeats,
            listener=listener,
            revocations=revocations,
            news_listener=news_listener,
        )

    return build


@pytest.fixture
async def client_factory() -> AsyncIterator[
    Callable[[ControlPlane], Awaitable[TestClient[web.Request, web.Application]]]
]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def build(plane: ControlPlane) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(plane.app))
        await client.start_server()
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()


async def csrf_of_login_page(client: TestClient[web.Request, web.Application]) -> str:
    response = await client.get("/login")
    assert response.status == 200
    match = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert match is not None
    return match.group(1)


@pytest.fixture
def login() -> LoginFn:
    async def do(client: TestClient[web.Request, web.Application], user: str, password: str) -> int:
        token = await csrf_of_login_page(client)
        response = await client.post(
            "/login",
            data={"user": user, "password": password, "csrf": token},
            allow_redirects=False,
        )
        return response.status

    return do
