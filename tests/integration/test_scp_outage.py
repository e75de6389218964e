"""The SCP while its PostgreSQL is down: clear 503s with Retry-After, sessions fail closed,
and everything works again once the database is back, with no restart."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mdp_core.settings import Secret, load
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters

PASSWORD = "outage-password-1"

Client = TestClient[web.Request, web.Application]


async def _login(client: Client) -> int:
    page = await (await client.get("/login")).text()
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    response = await client.post(
        "/login",
        data={"user": "ops", "password": PASSWORD, "csrf": match.group(1)},
        allow_redirects=False,
    )
    return response.status


async def test_a_database_outage_gives_503_with_retry_after_and_never_lets_anyone_in(
    private_postgres: Any, redis_db_url: str
) -> None:
    url = private_postgres.create_database()
    settings = load(
        ScpSettings,
        environ={},
        port=0,
        database_url=Secret(url),
        session_secret=Secret("outage-session-secret-0123456789"),
        wds_token_secret=Secret("outage-wds-secret"),
        mdc_redis_url=redis_db_url,
        wdc_redis_url=redis_db_url,
    )
    users = UserStore([User("ops", "admin", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))])
    plane = ControlPlane(settings, users=users)
    client: Client = TestClient(TestServer(plane.app))
    await client.start_server()
    try:
        assert await _login(client) == 303
        me = await client.get("/api/me")
        assert me.status == 200
        csrf = (await me.json())["csrf_token"]

        private_postgres.pause()
        for response in (
            await client.get("/api/me"),
            await client.get("/", allow_redirects=False),
            await client.put(
                "/api/watchlists/Tech", json={"symbols": ["AAPL"]}, headers={"X-CSRF-Token": csrf}
            ),
        ):
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"] == "5"
        assert await _login(client) == 503  # a correct password: still no way in
        body = await (await client.get("/api/me")).json()
        assert body == {"error": "the control plane's database is unavailable; retry shortly"}
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "database" in (await ready.json())["failing"]
        assert plane.metrics.database_errors._value.get() >= 5

        private_postgres.resume()
        assert (await client.get("/api/me")).status == 200  # the same session, no restart
        saved = await client.put(
            "/api/watchlists/Tech", json={"symbols": ["AAPL"]}, headers={"X-CSRF-Token": csrf}
        )
        assert saved.status == 201
        assert (await client.get("/readyz")).status == 200
    finally:
        await client.close()
