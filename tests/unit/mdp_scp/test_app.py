from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import SlotNotCoveredError

from mdp_core.clock import ManualClock
from mdp_core.settings import Secret, load
from mdp_core.token import verify_token
from mdp_runtime.health import ControlRequest, HealthServer
from mdp_scp import ControlPlane, ListenerControl, ScpSettings, UserStore, hash_password
from mdp_scp.__main__ import _config_problem
from mdp_scp.accounts import Accounts
from mdp_scp.database import Database

from .conftest import (
    FAST,
    PASSWORDS,
    WDS_SECRET,
    FakeHeartbeatRedis,
    FakeRevocations,
    LoginFn,
    csrf_of_login_page,
)

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[ControlPlane], Awaitable[Client]]
PlaneFactory = Callable[..., ControlPlane]


async def logged_in(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    user: str,
    **overrides: Any,
) -> Client:
    client = await client_factory(plane_factory(**overrides))
    assert await login(client, user, PASSWORDS[user]) == 303
    return client


async def csrf(client: Client) -> str:
    response = await client.get("/api/me")
    body = await response.json()
    return str(body["csrf_token"])


async def test_anonymous_users_get_the_login_page_and_json_401s(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory())
    page = await client.get("/", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/login"
    for path in ("/api/session", "/api/health", "/api/me", "/static/app.js"):
        response = await client.get(path)
        assert response.status == 401, path
        assert (await response.json())["error"] == "log in first"
    assert (await client.get("/static/login.css")).status == 200
    missing = await client.get("/nope")
    assert missing.status == 404
    assert "error" in await missing.json()


async def test_login_sets_a_hardened_cookie_and_serves_the_dashboard(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory())
    token = await csrf_of_login_page(client)
    response = await client.post(
        "/login",
        data={"user": "viewer", "password": PASSWORDS["viewer"], "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = next(v for v in response.headers.getall("Set-Cookie") if "mdp_scp_session=" in v)
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "secure" not in lowered  # plain http by default
    page = await client.get("/")
    assert page.status == 200
    assert '<script type="module" src="/static/app.js">' in await page.text()
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "ws://127.0.0.1:9" in csp  # the WDS origin may be connected to
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert (
        (await client.get("/static/app.js")).headers["Content-Type"].startswith("text/javascript")
    )


async def test_cookies_are_secure_behind_https(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory(public_url="https://scp.example.test"))
    page = await client.get("/login")
    login_cookie = page.cookies["mdp_scp_login"]
    assert login_cookie["secure"]
    match = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert match is not None
    # The test client speaks plain http, so it would not send a Secure cookie back by itself.
    response = await client.post(
        "/login",
        data={"user": "viewer", "password": PASSWORDS["viewer"], "csrf": match.group(1)},
        headers={"Cookie": f"mdp_scp_login={login_cookie.value}"},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = next(v for v in response.headers.getall("Set-Cookie") if "mdp_scp_session=" in v)
    assert "secure" in cookie.lower()
    assert "Strict-Transport-Security" in response.headers


async def test_login_needs_the_csrf_token_of_its_own_form(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory())
    credentials = {"user": "admin", "password": PASSWORDS["admin"]}
    missing = await client.post("/login", data=credentials, allow_redirects=False)
    assert missing.status == 403
    token = await csrf_of_login_page(client)
    # A token from another browser (another login cookie) does not fit this browser's cookie.
    other = await client_factory(plane_factory())
    foreign = await csrf_of_login_page(other)
    assert foreign != token
    wrong = await client.post(
        "/login", data={**credentials, "csrf": foreign}, allow_redirects=False
    )
    assert wrong.status == 403
    # The refusal re-renders the form with a fresh token (and cookie): that one works.
    match = re.search(r'name="csrf" value="([^"]+)"', await wrong.text())
    assert match is not None
    assert match.group(1) != token
    right = await client.post(
        "/login", data={**credentials, "csrf": match.group(1)}, allow_redirects=False
    )
    assert right.status == 303


async def test_wrong_passwords_are_rate_limited_per_user(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn, clock: ManualClock
) -> None:
    client = await client_factory(plane_factory(login_max_failures=3, login_window_seconds=60))
    for _ in range(3):
        assert await login(client, "admin", "wrong") == 401
    # Now even the right password is refused without being checked.
    token = await csrf_of_login_page(client)
    blocked = await client.post(
        "/login",
        data={"user": "admin", "password": PASSWORDS["admin"], "csrf": token},
        allow_redirects=False,
    )
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    # Another user from the same address is not locked out by someone else's typos.
    assert await login(client, "viewer", PASSWORDS["viewer"]) == 303
    client.session.cookie_jar.clear()
    clock.advance(61)
    assert await login(client, "admin", PASSWORDS["admin"]) == 303


async def test_an_address_spraying_many_names_is_rate_limited(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    client = await client_factory(plane_factory(login_max_failures_per_address=4))
    for index in range(4):
        assert await login(client, f"guess{index}", "wrong") == 401
    assert await login(client, "viewer", PASSWORDS["viewer"]) == 429


async def test_behind_a_trusted_proxy_failures_count_per_forwarded_address(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    async def login_from(client: Any, address: str, user: str, password: str) -> int:
        token = await csrf_of_login_page(client)
        response = await client.post(
            "/login",
            data={"user": user, "password": password, "csrf": token},
            headers={"X-Forwarded-For": address},
            allow_redirects=False,
        )
        return int(response.status)

    plane = plane_factory(login_max_failures_per_address=2, trusted_proxies=("127.0.0.1",))
    client = await client_factory(plane)
    for index in range(2):
        assert await login_from(client, "203.0.113.9", f"guess{index}", "wrong") == 401
    # The sprayer is blocked; another user behind the same proxy is not.
    assert await login_from(client, "203.0.113.9", "viewer", PASSWORDS["viewer"]) == 429
    assert await login_from(client, "203.0.113.10", "viewer", PASSWORDS["viewer"]) == 303
    untrusting = await client_factory(plane_factory(login_max_failures_per_address=2))
    for index in range(2):
        assert await login_from(untrusting, f"203.0.113.{index}", f"guess{index}", "x") == 401
    # Without trusted proxies the header is ignored: both failures were the same peer's.
    assert await login_from(untrusting, "203.0.113.99", "viewer", PASSWORDS["viewer"]) == 429


async def test_unknown_users_fail_like_wrong_passwords(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    client = await client_factory(plane_factory())
    assert await login(client, "nobody", "whatever") == 401
    assert await login(client, "admin", "") == 400


async def test_a_failed_login_logs_only_the_names_of_real_accounts(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    """A password typed into the user field must not reach the logs; a real name does."""
    client = await client_factory(plane_factory(login_max_failures=2))
    with structlog.testing.capture_logs() as logs:
        assert await login(client, PASSWORDS["viewer"], "whatever") == 401
        assert await login(client, "viewer", "wrong") == 401
        assert await login(client, "viewer", "wrong") == 401
        assert await login(client, "viewer", "wrong") == 429
        for _ in range(2):
            assert await login(client, "hunter2-typed-here", "wrong") == 401
        assert await login(client, "hunter2-typed-here", "wrong") == 429
    refused = [(log["event"], log["user"]) for log in logs if log["event"].startswith("login_")]
    assert refused == [
        ("login_failed", None),
        ("login_failed", "viewer"),
        ("login_failed", "viewer"),
        ("login_throttled", "viewer"),
        ("login_failed", None),
        ("login_failed", None),
        ("login_throttled", None),
    ]
    assert PASSWORDS["viewer"] not in repr(logs)
    assert "hunter2" not in repr(logs)


async def test_session_api_issues_a_scoped_short_lived_wds_token(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn, clock: ManualClock
) -> None:
    client = await logged_in(plane_factory, client_factory, login, "viewer")
    response = await client.get("/api/session")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["user"] == "viewer"
    assert body["role"] == "viewer"
    assert body["wds_url"] == "ws://127.0.0.1:9/ws"
    now = clock.now_ns() / 1e9
    claims = verify_token(WDS_SECRET, body["wds_token"], now)
    assert claims.subject == "viewer"
    assert "scanner:top_gainers" in claims.feeds
    assert "quote:*" in claims.feeds
    assert claims.expires_at == body["wds_token_expires_at"] == int(now) + 300
    assert 0 < body["refresh_after_seconds"] < 300


async def test_feeds_granted_follow_the_setting(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn, clock: ManualClock
) -> None:
    client = await logged_in(
        plane_factory, client_factory, login, "viewer", viewer_feeds=("scanner:*",)
    )
    body = await (await client.get("/api/session")).json()
    claims = verify_token(WDS_SECRET, body["wds_token"], clock.now_ns() / 1e9)
    assert claims.feeds == ("scanner:*",)


async def test_sessions_expire_on_the_server(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn, clock: ManualClock
) -> None:
    client = await logged_in(
        plane_factory, client_factory, login, "viewer", session_ttl_seconds=600
    )
    assert (await client.get("/api/session")).status == 200
    clock.advance(601)
    assert (await client.get("/api/session")).status == 401
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_logout_needs_csrf_and_voids_the_session(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    client = await logged_in(plane_factory, client_factory, login, "viewer")
    token = await csrf(client)
    refused = await client.post("/logout", data={"csrf": "nope"}, allow_redirects=False)
    assert refused.status == 403
    assert (await client.get("/api/me")).status == 200
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["mdp_scp_session"]
    done = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert done.status == 303
    assert done.headers["Location"] == "/login"
    # Replaying the old cookie does not work: the session is gone on the server.
    client.session.cookie_jar.update_cookies({"mdp_scp_session": cookie.value})
    assert (await client.get("/api/me")).status == 401


class FakeListener:
    """A real runtime health server with the listener's control routes and a control token."""

    def __init__(self, token: str) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.server = HealthServer(
            "127.0.0.1",
            0,
            service="listener",
            version="0",
            metrics_snapshot=dict,
            readiness={},
            control_token=token,
        )
        for method, path in (
            ("GET", "/subscriptions"),
            ("PUT", "/subscriptions"),
            ("PUT", "/feed"),
            ("POST", "/start"),
            ("POST", "/stop"),
        ):
            self.server.add_control(method, path, self._handler)

    async def _handler(self, request: ControlRequest) -> dict[str, object]:
        self.calls.append((request.method, request.path, request.body))
        return {"topics": ["A.*"], "echo": request.body}


@pytest.fixture
async def fake_listener() -> AsyncIterator[FakeListener]:
    listener = FakeListener("listener-control-token-xyz")
    await listener.server.start()
    yield listener
    await listener.server.stop()


async def test_viewers_see_health_but_cannot_use_controls(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    fake_listener: FakeListener,
) -> None:
    control = ListenerControl(fake_listener.server.url, "listener-control-token-xyz")
    client = await logged_in(plane_factory, client_factory, login, "viewer", listener=control)
    health = await client.get("/api/health")
    assert health.status == 200
    assert (await health.json())["controls"] == {
        "available": True,
        "news_available": False,
        "allowed": False,
        "runtime": {},  # no runtime buttons for a viewer
    }
    token = await csrf(client)
    for method, action in (("GET", "subscriptions"), ("POST", "start"), ("POST", "stop")):
        response = await client.request(
            method, f"/api/control/{action}", headers={"X-CSRF-Token": token}
        )
        assert response.status == 403, action
    assert fake_listener.calls == []
    await control.close()


async def test_admins_control_the_listener_through_the_scp(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    fake_listener: FakeListener,
) -> None:
    control = ListenerControl(fake_listener.server.url, "listener-control-token-xyz")
    client = await logged_in(plane_factory, client_factory, login, "admin", listener=control)
    token = await csrf(client)
    no_csrf = await client.post("/api/control/stop")
    assert no_csrf.status == 403
    assert fake_listener.calls == []
    listed = await client.get("/api/control/subscriptions")
    assert listed.status == 200
    assert (await listed.json())["topics"] == ["A.*"]
    put = await client.put(
        "/api/control/subscriptions",
        json={"topics": ["T.AAPL"]},
        headers={"X-CSRF-Token": token},
    )
    assert put.status == 200
    stop = await client.post("/api/control/stop", headers={"X-CSRF-Token": token})
    assert stop.status == 200
    assert fake_listener.calls == [
        ("GET", "/control/subscriptions", None),
        ("PUT", "/control/subscriptions", {"topics": ["T.AAPL"]}),
        ("POST", "/control/stop", None),
    ]
    nested = await client.put(
        "/api/control/feed",
        data=b"[" * 5_000,
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert nested.status == 400  # refused as "not JSON", nothing forwarded
    huge = await client.put(  # past Python's 4,300-digit int conversion: a ValueError, was 500
        "/api/control/subscriptions",
        data=b'{"symbols":[' + b"1" * 5_000 + b"]}",
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert huge.status == 400
    assert len(fake_listener.calls) == 3
    # Only the fixed set of calls is forwarded.
    other = await client.delete("/api/control/subscriptions", headers={"X-CSRF-Token": token})
    assert other.status == 404
    restart = await client.post("/api/control/restart", headers={"X-CSRF-Token": token})
    assert restart.status == 404
    assert len(fake_listener.calls) == 3
    await control.close()


async def test_a_refused_control_token_is_a_bad_gateway_not_a_user_error(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    fake_listener: FakeListener,
) -> None:
    control = ListenerControl(fake_listener.server.url, "the-wrong-token")
    client = await logged_in(plane_factory, client_factory, login, "admin", listener=control)
    token = await csrf(client)
    response = await client.post("/api/control/start", headers={"X-CSRF-Token": token})
    assert response.status == 502
    assert "control token" in (await response.json())["error"]
    await control.close()


async def test_controls_without_a_listener_are_unavailable(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    client = await logged_in(plane_factory, client_factory, login, "admin")
    token = await csrf(client)
    response = await client.post("/api/control/start", headers={"X-CSRF-Token": token})
    assert response.status == 503


async def test_no_secret_ever_reaches_a_response(
    *,
    monkeypatch: pytest.MonkeyPatch,
    clock: ManualClock,
    client_factory: ClientFactory,
    login: LoginFn,
    fake_listener: FakeListener,
    tmp_path: Path,
) -> None:
    secrets = {
        "MASSIVE_API_KEY": "massive-key-SHOULD-NOT-LEAK",
        "POLYGON_API_KEY": "polygon-key-SHOULD-NOT-LEAK",
        "FINLIGHT_API_KEY": "finlight-key-SHOULD-NOT-LEAK",
        "MDP_SCP_LISTENER_CONTROL_TOKEN": "listener-control-token-xyz",
        "MDP_SCP_SESSION_SECRET": "session-secret-SHOULD-NOT-LEAK",
        "MDP_WDS_TOKEN_SECRET": WDS_SECRET,
        "MDP_SCP_OIDC_CLIENT_SECRET": "oidc-secret-SHOULD-NOT-LEAK",
        "MDP_SCP_DATABASE_URL": f"sqlite:///{tmp_path / 'database-SHOULD-NOT-LEAK.sqlite3'}",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MDP_SCP_LISTENER_CONTROL_URL", fake_listener.server.url)
    settings = load(ScpSettings)
    admin_hash = hash_password(PASSWORDS["admin"], FAST)
    users_file = tmp_path / "users.json"
    users_file.write_text(
        json.dumps([{"name": "admin", "role": "admin", "password_hash": admin_hash}])
    )
    plane = ControlPlane(
        settings,
        users=UserStore.from_file(users_file),
        clock=clock,
        redis=None,
        revocations=FakeRevocations(),
    )
    plane._redis = None  # heartbeats are not part of this test
    client = await client_factory(plane)
    seen: list[str] = []

    async def record(response: Any) -> None:
        seen.append(json.dumps(dict(response.headers)))
        seen.append(await response.text())

    await record(await client.get("/login"))
    assert await login(client, "admin", PASSWORDS["admin"]) == 303
    token = await csrf(client)
    for path in ("/", "/admin", "/api/session", "/api/me", "/api/health", "/livez", "/readyz"):
        await record(await client.get(path))
    for name in ("app.js", "wds.js", "admin.js", "style.css"):
        await record(await client.get(f"/static/{name}"))
    await record(await client.get("/api/control/subscriptions"))
    await record(await client.post("/api/control/start", headers={"X-CSRF-Token": token}))
    text = "\n".join(seen)
    for name, value in secrets.items():
        assert value not in text, name
    assert admin_hash not in text
    assert Secret(WDS_SECRET) == settings.wds_token_secret


async def test_probes(plane_factory: PlaneFactory, client_factory: ClientFactory) -> None:
    client = await client_factory(plane_factory())
    assert (await client.get("/livez")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    unready = await client_factory(plane_factory(wds_token_secret=None))
    response = await unready.get("/readyz")
    assert response.status == 503
    assert "wds_tokens" in (await response.json())["failing"]


async def test_first_admin_password_is_returned_once_and_works(
    clock: ManualClock, client_factory: ClientFactory, login: LoginFn
) -> None:
    from .conftest import make_settings

    plane = ControlPlane(
        make_settings(), users=UserStore(), clock=clock, redis=FakeHeartbeatRedis()
    )
    assert plane.users.get("root") is None
    password = plane.create_first_admin("root")
    user = plane.users.get("root")
    assert user is not None
    assert password not in user.password_hash
    client = await client_factory(plane)
    assert await login(client, "root", password) == 303
    assert (await (await client.get("/api/me")).json())["role"] == "admin"


class CountingAccounts(Accounts):
    """Accounts that count real password checks and hold them as if scrypt were slow."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        self.release = asyncio.Event()

    async def authenticate(self, database: Database, name: str, password: str) -> Any:
        self.checks += 1
        await self.release.wait()
        return await super().authenticate(database, name, password)


async def test_parallel_attempts_cannot_beat_the_throttle(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    plane = plane_factory(login_max_failures=5, login_max_failures_per_address=20)
    users = CountingAccounts()
    plane.accounts = users
    client = await client_factory(plane)

    async def attempt(index: int) -> int:
        nonce = f"form-{index}"  # each attempt with its own login form (cookie and token)
        response = await client.post(
            "/login",
            data={
                "user": "admin",
                "password": "wrong",
                "csrf": plane._signer.signature(nonce, "login-csrf"),
            },
            headers={"Cookie": f"mdp_scp_login={nonce}"},
            allow_redirects=False,
        )
        return response.status

    attempts = [asyncio.create_task(attempt(index)) for index in range(40)]

    def settled() -> bool:  # every attempt is either answered or inside the password check
        return users.checks + sum(task.done() for task in attempts) == len(attempts)

    async with asyncio.timeout(10):
        while not settled():  # noqa: ASYNC110 - the HTTP server offers no event to wait on
            await asyncio.sleep(0.01)
    users.release.set()
    statuses = await asyncio.gather(*attempts)
    assert users.checks == 5  # never more real checks than the limit
    assert statuses.count(401) == 5
    assert statuses.count(429) == 35


async def test_a_stranger_cannot_lock_the_admin_out_and_ipv6_counts_per_64(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    async def login_from(client: Any, address: str, password: str) -> int:
        token = await csrf_of_login_page(client)
        response = await client.post(
            "/login",
            data={"user": "admin", "password": password, "csrf": token},
            headers={"X-Forwarded-For": address},
            allow_redirects=False,
        )
        client.session.cookie_jar.clear()
        return int(response.status)

    plane = plane_factory(
        login_max_failures=3, login_max_failures_per_address=50, trusted_proxies=("127.0.0.1",)
    )
    client = await client_factory(plane)
    for index in range(3):  # one attacker hopping addresses inside its /64
        assert await login_from(client, f"2001:db8:1:2::{index + 1}", "wrong") == 401
    assert await login_from(client, "2001:db8:1:2::ffff", PASSWORDS["admin"]) == 429
    # the real admin, elsewhere, is not locked out by the stranger's guesses
    assert await login_from(client, "2001:db8:9:9::1", PASSWORDS["admin"]) == 303
    assert await login_from(client, "198.51.100.7", PASSWORDS["admin"]) == 303


async def test_pages_deny_device_apis(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory())
    page = await client.get("/login")
    policy = page.headers["Permissions-Policy"]
    assert "camera=()" in policy
    assert "geolocation=()" in policy
    assert "microphone=()" in policy


@pytest.mark.parametrize(
    "error",
    [SlotNotCoveredError("Slot 2 is not covered by the cluster."), RedisConnectionError("down")],
    ids=type,
)
async def test_runtime_orders_on_an_unusable_cache_are_unavailable_not_an_error(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    heartbeats: FakeHeartbeatRedis,
    error: Exception,
) -> None:
    """A Redis Cluster between masters raises ``SlotNotCoveredError`` (no ``RedisError``)."""

    async def unusable(*args: object) -> dict[bytes, bytes]:
        raise error

    heartbeats.hgetall = unusable  # type: ignore[attr-defined] # the command runtime orders read
    client = await logged_in(plane_factory, client_factory, login, "admin")
    response = await client.get("/api/admin/runtime")
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"


_RAW_HEAD = b"Host: scp\r\nConnection: close\r\n"
_FORM = b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /api/me HTTP/1.1\r\n" + _RAW_HEAD + b"Authorization: Bearer mdp_\xff_x\r\n\r\n",
         401),
        (b"GET /api/me HTTP/1.1\r\n" + _RAW_HEAD + b"Cookie: mdp_scp_session=ab\xff.cd\r\n\r\n",
         401),
        (b"GET /login HTTP/1.1\r\n" + _RAW_HEAD + b"Cookie: mdp_scp_session=ab\xff.cd\r\n\r\n",
         200),
        (
            b"POST /login HTTP/1.1\r\n" + _RAW_HEAD + b"Cookie: mdp_scp_login=a\xff\r\n" + _FORM
            + b"user=a&password=b&csrf=c",
            403,  # the form "expired": no nonce of ours
        ),
        (
            b"POST /login HTTP/1.1\r\n" + _RAW_HEAD
            + b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 11\r\n\r\n"
            + b"--x\r\nbroken",
            400,
        ),
    ],
)  # fmt: skip
async def test_header_bytes_that_are_not_utf8_and_broken_forms_get_no_500(
    plane_factory: PlaneFactory, client_factory: ClientFactory, request_bytes: bytes, status: int
) -> None:
    # aiohttp hands such bytes over as surrogates, which .encode() refused: 500s, unlogged in.
    client = await client_factory(plane_factory())
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert status_line.split()[1] == str(status).encode()


@pytest.mark.parametrize(
    ("secret", "starts"), [("fifteen-bytes!!", False), ("sixteen-bytes!!!", True)]
)
def test_a_wds_token_secret_under_16_bytes_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, secret: str, starts: bool
) -> None:
    # A short HMAC key is guessed offline from one token the dashboard holds.
    monkeypatch.setenv("MDP_WDS_TOKEN_SECRET", secret)
    problem = _config_problem(load(ScpSettings))
    assert (problem is None) is starts
    if not starts:
        assert problem == "MDP_WDS_TOKEN_SECRET needs at least 16 bytes (use 32 random ones)"
