"""Two SCP processes on one PostgreSQL share sessions; a logout on one ends everything.

This is the deployment shape: two ``mdp-scp serve`` replicas behind one Service, one database,
one WDS. A browser logs in on replica A, is served by replica B, logs out on B: A refuses the
cookie at once, the WDS closes the live connection opened with the session's token and refuses
that token from then on. The first administrator comes from the one-off ``create-admin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mdp_core.ports import free_port as _free_port  # below the ephemeral range
from mdp_core.settings import Secret, load
from mdp_wds import WdsSettings, WidgetServer

WDS_SECRET = "replica-test-wds-secret-0123456789"
SESSION_SECRET = "replica-test-session-secret-0123456789"
PASSWORD = "first-admin-password-1"
WAIT = 30.0


def _env(postgres_url: str, redis_db_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "NO_PROXY": "127.0.0.1,localhost",
        "MDP_SCP_DATABASE_URL": postgres_url,
        "MDP_SCP_SESSION_SECRET": SESSION_SECRET,
        "MDP_WDS_TOKEN_SECRET": WDS_SECRET,
        "MDP_MDC_REDIS_URL": redis_db_url,
        "MDP_WDC_REDIS_URL": redis_db_url,
        "MDP_LOG_FORMAT": "json",
        **extra,
    }


async def _create_admin(env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mdp_scp", "create-admin", "root",
        env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        _out, err = await process.communicate(f"{PASSWORD}\n".encode())
    assert process.returncode == 0, err.decode()
    assert "'root' created" in err.decode()


@contextlib.asynccontextmanager
async def _replica(env: dict[str, str]) -> AsyncIterator[str]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mdp_scp", "serve",
        env={**env, "MDP_SCP_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(WAIT):
            while True:
                assert process.returncode is None, "the replica exited at start"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/readyz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)  # polling a starting process: no event to wait on
        yield url
    finally:
        process.terminate()
        async with asyncio.timeout(WAIT):
            await process.wait()


async def _login(http: aiohttp.ClientSession, url: str) -> str:
    page = await (await http.get(f"{url}/login")).text()
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    response = await http.post(
        f"{url}/login",
        data={"user": "root", "password": PASSWORD, "csrf": match.group(1)},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = response.cookies["mdp_scp_session"].value
    assert cookie
    return cookie


async def _get(url: str, path: str, cookie: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(cookies={"mdp_scp_session": cookie}) as http,
        http.get(f"{url}{path}") as response,
    ):
        return response.status, await response.json()


@pytest.fixture
async def wds(redis_db_url: str) -> AsyncIterator[WidgetServer]:
    settings = load(
        WdsSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wdc_redis_url=redis_db_url,
        token_secret=Secret(WDS_SECRET),
        allowed_origins=("*",),
        revocation_poll_seconds=0.1,
        close_timeout_seconds=0.5,
    )
    server = WidgetServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_two_replicas_share_the_session_and_a_logout_on_one_ends_it_everywhere(
    postgres_url: str, redis_db_url: str, wds: WidgetServer
) -> None:
    env = _env(postgres_url, redis_db_url, MDP_SCP_WDS_URL=wds.url)
    await _create_admin(env)
    async with _replica(env) as a, _replica(env) as b:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            cookie = await _login(http, a)
        status, me = await _get(b, "/api/session", cookie)  # replica B knows A's session
        assert status == 200
        assert me["user"] == "root"
        assert me["role"] == "admin"

        async with connect(wds.url) as ws:
            await ws.send(json.dumps({"op": "auth", "token": me["wds_token"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["op"] == "auth_ok"

            async with aiohttp.ClientSession(cookies={"mdp_scp_session": cookie}) as http:
                response = await http.post(
                    f"{b}/logout", headers={"X-CSRF-Token": me["csrf_token"]},
                    allow_redirects=False,
                )  # fmt: skip
                assert response.status == 303

            async def read_until_closed() -> None:
                async with asyncio.timeout(WAIT):
                    while True:
                        await ws.recv()

            # The live WDS connection of the ended session is closed ...
            with pytest.raises(ConnectionClosed) as closed:
                await read_until_closed()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4001
            assert closed.value.rcvd.reason == "session ended"

        # ... replica A refuses the cookie ...
        assert (await _get(a, "/api/session", cookie))[0] == 401
        # ... and the WDS refuses the session's token even though it has not expired.
        async with connect(wds.url) as ws:
            await ws.send(json.dumps({"op": "auth", "token": me["wds_token"]}))
            with pytest.raises(ConnectionClosed) as refused:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert refused.value.rcvd is not None
            assert refused.value.rcvd.reason == "session ended"

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            admin_cookie = await _login(http, b)
        status, audit = await _get(a, "/api/admin/audit?user=root", admin_cookie)
        assert status == 200
        actions = [(e["action"], e["result"]) for e in audit["entries"]]
        assert actions[:3] == [("login", "ok"), ("logout", "ok"), ("login", "ok")]
