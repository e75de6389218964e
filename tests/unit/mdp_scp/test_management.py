"""The management API on the embedded SQLite store: roles, CSRF, audit, tokens, bad input."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mdp_scp import ControlPlane
from mdp_scp.database import BadValue

from .conftest import PASSWORDS, FakeRevocations, LoginFn

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[ControlPlane], Awaitable[Client]]
PlaneFactory = Callable[..., ControlPlane]


async def session_of(client: Client, login: LoginFn, user: str, password: str) -> dict[str, str]:
    """Log ``client`` in and return the CSRF header its state-changing calls need."""
    assert await login(client, user, password) == 303
    me = await (await client.get("/api/me")).json()
    return {"X-CSRF-Token": me["csrf_token"]}


async def admin_client(
    plane: ControlPlane, client_factory: ClientFactory, login: LoginFn
) -> tuple[Client, dict[str, str]]:
    client = await client_factory(plane)
    return client, await session_of(client, login, "admin", PASSWORDS["admin"])


async def test_an_admin_creates_a_user_who_logs_in_and_everything_is_audited(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    created = await admin.post(
        "/api/admin/users", json={"name": "tina", "role": "trader"}, headers=headers
    )
    assert created.status == 201
    body = await created.json()
    assert body["user"]["role"] == "trader"
    password = body["password"]  # generated, shown once
    listed = await (await admin.get("/api/admin/users")).json()
    assert {u["name"]: u["role"] for u in listed["users"]} == {
        "admin": "admin",
        "tina": "trader",
        "viewer": "viewer",
    }
    assert "scrypt$" not in json.dumps(listed)
    assert password not in json.dumps(listed)

    tina = await client_factory(plane)
    assert await login(tina, "tina", password) == 303
    assert (await (await tina.get("/api/me")).json())["role"] == "trader"

    audit = await (await admin.get("/api/admin/audit?action=user.create")).json()
    assert [(e["actor"], e["target"], e["result"]) for e in audit["entries"]] == [
        ("admin", "tina", "ok")
    ]
    logins = await (await admin.get("/api/admin/audit?user=tina&action=login")).json()
    assert [e["result"] for e in logins["entries"]] == ["ok"]


async def test_only_admins_manage_and_every_change_needs_the_csrf_token(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    viewer = await client_factory(plane)
    viewer_headers = await session_of(viewer, login, "viewer", PASSWORDS["viewer"])
    assert (await viewer.get("/api/admin/users")).status == 403
    refused = await viewer.post(
        "/api/admin/users", json={"name": "x", "role": "admin"}, headers=viewer_headers
    )
    assert refused.status == 403
    admin, _headers = await admin_client(plane, client_factory, login)
    no_csrf = await admin.post("/api/admin/users", json={"name": "x", "role": "viewer"})
    assert no_csrf.status == 403
    assert (await (await admin.get("/api/admin/users")).json())["users"][1]["name"] != "x"
    anonymous = await client_factory(plane)
    assert (await anonymous.get("/api/admin/audit")).status == 401


async def test_bad_bodies_unknown_roles_and_duplicate_names_get_clear_errors(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)

    async def create(data: bytes) -> tuple[int, str]:
        response = await admin.post(
            "/api/admin/users",
            data=data,
            headers={**headers, "Content-Type": "application/json"},
        )
        return response.status, (await response.json())["error"]

    assert await create(b"{not json") == (400, "the request body is not a JSON object")
    not_utf8 = b'{"name": "x\xff", "role": "viewer"}'  # escaped as a UnicodeDecodeError: 500
    assert await create(not_utf8) == (400, "the request body is not a JSON object")
    assert plane.metrics.bad_requests.labels("not_json")._value.get() == 2
    status, error = await create(b'{"name": "z", "role": "root"}')
    assert (status, error) == (400, "unknown role 'root'; roles: viewer, trader, admin")
    status, error = await create(b'{"name": "z", "role": "viewer", "is_admin": true}')
    assert status == 400
    assert "is_admin" in error
    status, error = await create(b'{"name": "viewer", "role": "admin"}')
    assert (status, error) == (409, "a user called 'viewer' exists already")
    status, error = await create(b'{"name": "bad name!", "role": "viewer"}')
    assert status == 400
    status, _error = await create(b'{"name": "' + b"a" * 20_000 + b'", "role": "viewer"}')
    assert status == 413
    # Nothing was half-written: the viewer is still a viewer, nobody new exists.
    users = (await (await admin.get("/api/admin/users")).json())["users"]
    assert [(u["name"], u["role"]) for u in users] == [("admin", "admin"), ("viewer", "viewer")]
    assert plane.metrics.bad_requests.labels("unknown_role")._value.get() == 1


async def test_disabling_a_user_ends_its_sessions_and_revokes_its_wds_tokens(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    revocations: FakeRevocations,
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    viewer = await client_factory(plane)
    await session_of(viewer, login, "viewer", PASSWORDS["viewer"])
    await admin.post("/api/admin/users", json={"name": "vic", "role": "viewer"}, headers=headers)
    sessions = await (await admin.get("/api/admin/users/viewer/sessions")).json()
    [session] = sessions["sessions"]
    changed = await admin.patch(
        "/api/admin/users/vic", json={"disabled": True, "role": "trader"}, headers=headers
    )
    assert changed.status == 200
    assert (await changed.json())["user"] == {
        **(await changed.json())["user"],
        "disabled": True,
        "role": "trader",
    }
    ended = await admin.delete("/api/admin/users/viewer/sessions", headers=headers)
    assert await ended.json() == {"ended": 1}
    assert session["id"] in revocations.members
    assert (await viewer.get("/api/me")).status == 401


async def test_disabling_a_user_revokes_the_wds_tokens_its_api_tokens_got(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    revocations: FakeRevocations,
) -> None:
    # A WDS token issued to an API token carries sid token:<id>; the API token is refused once
    # its owner is disabled, but the WDS token lived on (and its sockets) until its expiry.
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    await admin.post("/api/admin/users", json={"name": "vic", "role": "viewer"}, headers=headers)
    made = await admin.post("/api/admin/users/vic/tokens", json={"name": "script"}, headers=headers)
    assert made.status == 201
    live = (await made.json())["id"]
    gone = await admin.post("/api/admin/users/vic/tokens", json={"name": "old"}, headers=headers)
    revoked = (await gone.json())["id"]
    assert (await admin.delete(f"/api/admin/tokens/{revoked}", headers=headers)).status == 200
    revocations.members.clear()
    changed = await admin.patch("/api/admin/users/vic", json={"disabled": True}, headers=headers)
    assert changed.status == 200
    assert f"token:{live}" in revocations.members
    assert f"token:{revoked}" not in revocations.members  # revoked before: nothing to end


async def test_a_demotion_applies_to_live_sessions_at_once(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    created = await admin.post(
        "/api/admin/users", json={"name": "ivy", "role": "admin"}, headers=headers
    )
    ivy = await client_factory(plane)
    await session_of(ivy, login, "ivy", (await created.json())["password"])
    assert (await ivy.get("/api/admin/users")).status == 200
    demoted = await admin.patch("/api/admin/users/ivy", json={"role": "viewer"}, headers=headers)
    assert demoted.status == 200
    assert (await ivy.get("/api/admin/users")).status == 403
    assert (await (await ivy.get("/api/me")).json())["role"] == "viewer"


async def test_the_last_admin_cannot_be_demoted_or_disabled(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    await admin.post("/api/admin/users", json={"name": "ada", "role": "admin"}, headers=headers)
    assert (
        await admin.patch("/api/admin/users/ada", json={"role": "viewer"}, headers=headers)
    ).status == 200
    # "admin" comes from the settings: changed there, not here
    assert (
        await admin.patch("/api/admin/users/admin", json={"disabled": True}, headers=headers)
    ).status == 409
    await admin.post("/api/admin/users", json={"name": "bea", "role": "admin"}, headers=headers)
    assert (
        await admin.patch("/api/admin/users/bea", json={"disabled": True}, headers=headers)
    ).status == 200


async def test_a_password_reset_ends_the_users_sessions(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    created = await admin.post(
        "/api/admin/users", json={"name": "pat", "role": "viewer"}, headers=headers
    )
    first = (await created.json())["password"]
    pat = await client_factory(plane)
    assert await login(pat, "pat", first) == 303
    reset = await admin.post("/api/admin/users/pat/password", json={}, headers=headers)
    second = (await reset.json())["password"]
    assert second != first
    assert (await pat.get("/api/me")).status == 401
    assert await login(pat, "pat", first) == 401
    assert await login(pat, "pat", second) == 303


async def test_a_service_account_token_calls_the_api_without_a_browser_until_revoked(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    admin, headers = await admin_client(plane, client_factory, login)
    made = await admin.post(
        "/api/admin/users", json={"name": "ci-bot", "role": "admin", "kind": "service"},
        headers=headers,
    )  # fmt: skip
    assert "password" not in await made.json()
    issued = await admin.post(
        "/api/admin/users/ci-bot/tokens",
        json={"name": "deploys", "expires_in_days": 30},
        headers=headers,
    )
    assert issued.status == 201
    token = (await issued.json())["token"]
    script = await client_factory(plane)
    bearer = {"Authorization": f"Bearer {token}"}
    # No CSRF token needed: a browser never sends this header on its own.
    response = await script.post(
        "/api/admin/users", json={"name": "from-ci", "role": "viewer"}, headers=bearer
    )
    assert response.status == 201
    audit = await (await admin.get("/api/admin/audit?action=user.create")).json()
    assert audit["entries"][0]["actor"].startswith("ci-bot (token:")
    listed = await (await admin.get("/api/admin/tokens")).json()
    [stored] = listed["tokens"]
    # The secret follows the id; it may hold "_" itself (URL-safe base64).
    secret = token.partition(f"{stored['id']}_")[2]
    assert len(secret) == 43  # token_urlsafe(32)
    assert secret not in json.dumps(listed)
    revoked = await admin.delete(f"/api/admin/tokens/{stored['id']}", headers=headers)
    assert revoked.status == 200
    assert (await script.get("/api/admin/users", headers=bearer)).status == 401
    assert (
        await script.get("/api/admin/users", headers={"Authorization": "Bearer junk"})
    ).status == 401


async def test_a_personal_token_never_outranks_its_owner(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory()
    viewer = await client_factory(plane)
    headers = await session_of(viewer, login, "viewer", PASSWORDS["viewer"])
    too_high = await viewer.post(
        "/api/tokens", json={"name": "x", "role": "admin"}, headers=headers
    )
    assert too_high.status == 403
    too_long = await viewer.post(
        "/api/tokens", json={"name": "x", "expires_in_days": 10_000}, headers=headers
    )
    assert too_long.status == 400
    mine = await viewer.post("/api/tokens", json={"name": "laptop"}, headers=headers)
    assert (await mine.json())["role"] == "viewer"
    token = (await mine.json())["token"]
    script = await client_factory(plane)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await script.get("/api/watchlists", headers=bearer)).status == 200
    assert (await script.get("/api/admin/users", headers=bearer)).status == 403


async def test_watchlists_and_layout_are_saved_server_side_within_limits(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    plane = plane_factory(watchlist_max_lists=2, watchlist_max_symbols=3)
    first = await client_factory(plane)
    headers = await session_of(first, login, "viewer", PASSWORDS["viewer"])
    put = await first.put(
        "/api/watchlists/Tech", json={"symbols": ["aapl", "MSFT"]}, headers=headers
    )
    assert put.status == 201
    assert await put.json() == {"name": "Tech", "symbols": ["AAPL", "MSFT"]}
    too_many = await first.put(
        "/api/watchlists/Big", json={"symbols": ["A", "B", "C", "D"]}, headers=headers
    )
    assert too_many.status == 400
    assert "at most 3 symbols" in (await too_many.json())["error"]
    bad = await first.put("/api/watchlists/X", json={"symbols": "AAPL"}, headers=headers)
    assert bad.status == 400
    layout = {"sort": {"top_gainers": "-pct"}, "follow": "AAPL"}
    assert (await first.put("/api/layout", json={"layout": layout}, headers=headers)).status == 200
    huge = {"layout": {"x": "y" * 9_000}}
    assert (await first.put("/api/layout", json=huge, headers=headers)).status == 400

    other_browser = await client_factory(plane)
    await session_of(other_browser, login, "viewer", PASSWORDS["viewer"])
    lists = await (await other_browser.get("/api/watchlists")).json()
    assert lists == {
        "watchlists": [{"name": "Tech", "symbols": ["AAPL", "MSFT"]}],
        "max_lists": 2,
        "max_symbols": 3,
    }
    assert (await (await other_browser.get("/api/layout")).json()) == {"layout": layout}
    admin, _h = await admin_client(plane, client_factory, login)
    assert (await (await admin.get("/api/watchlists")).json())["watchlists"] == []


async def test_listener_controls_are_audited(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    class Listener:
        async def call(self, method: str, action: str, body: object = None) -> Any:
            from mdp_scp.listener_control import ControlReply

            return ControlReply(200, {"ok": True, "action": action})

        async def close(self) -> None:
            return None

    plane = plane_factory(listener=Listener())
    admin, headers = await admin_client(plane, client_factory, login)
    assert (await admin.post("/api/control/stop", headers=headers)).status == 200
    audit = await (await admin.get("/api/admin/audit?action=control.")).json()
    assert [(e["action"], e["result"], e["target"]) for e in audit["entries"]] == [
        ("control.listener.stop", "200", "listener")
    ]


async def test_news_listener_controls_are_forwarded_for_admins_only_and_audited(
    plane_factory: PlaneFactory, client_factory: ClientFactory, login: LoginFn
) -> None:
    from mdp_runtime.health import ControlRequest, HealthServer
    from mdp_scp.listener_control import NEWS_CONTROL_CALLS, ListenerControl

    calls: list[str] = []

    async def stop(_: ControlRequest) -> dict[str, object]:
        calls.append("stop")
        return {"enabled": False}

    health = HealthServer(
        "127.0.0.1",
        0,
        service="news-listener",
        version="0",
        metrics_snapshot=dict,
        readiness={},
        control_token="news-token",
    )
    health.add_control("POST", "/stop", stop)
    await health.start()
    try:
        control = ListenerControl(health.url, "news-token", NEWS_CONTROL_CALLS)
        plane = plane_factory(news_listener=control)
        admin, headers = await admin_client(plane, client_factory, login)
        stopped = await admin.post("/api/control/news/stop", headers=headers)
        assert stopped.status == 200
        assert await stopped.json() == {"enabled": False}
        assert calls == ["stop"]
        refused = await admin.put("/api/control/news/subscriptions", headers=headers)
        assert refused.status == 404  # not a news listener call: never forwarded
        viewer = await client_factory(plane)
        viewer_headers = await session_of(viewer, login, "viewer", PASSWORDS["viewer"])
        assert (await viewer.post("/api/control/news/stop", headers=viewer_headers)).status == 403
        audit = await (await admin.get("/api/admin/audit?action=control.")).json()
        assert [(e["action"], e["target"], e["result"]) for e in audit["entries"]] == [
            ("control.news-listener.subscriptions", "news-listener", "unknown"),
            ("control.news-listener.stop", "news-listener", "200"),
        ]
        await control.close()
    finally:
        await health.stop()


async def test_a_value_the_database_refuses_is_a_counted_400_not_a_500(
    plane_factory: PlaneFactory,
    client_factory: ClientFactory,
    login: LoginFn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PostgreSQL refuses a NUL in text (tests/integration/test_scp_store.py); SQLite, under
    # these tests, stores it, so the refusal is played here.
    plane = plane_factory()
    admin, _ = await admin_client(plane, client_factory, login)

    async def refuse(*_: object, **__: object) -> list[object]:
        raise BadValue("22021")

    monkeypatch.setattr(plane.audit, "query", refuse)  # the store's refusal, played
    response = await admin.get("/api/admin/audit?user=a%00")
    assert response.status == 400
    assert "NUL" in (await response.json())["error"]
    assert plane.metrics.bad_requests.labels("bad_value")._value.get() == 1
