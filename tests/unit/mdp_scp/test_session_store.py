"""The database-backed session store on the embedded SQLite: every rule pinned exactly.

What a session row holds, when it is void (expiry boundaries, forged cookies, disabled users),
which sessions logging out and ending a user's sessions remove, and the order and contents of
a user's session list. The same store runs on PostgreSQL in ``tests/integration``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, update

from mdp_scp.accounts import Account, Accounts
from mdp_scp.database import Database
from mdp_scp.schema import sessions, users
from mdp_scp.sessions import Session, SessionStore, Signer

KEY = b"k" * 32
TTL = 100.0


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    db = Database("sqlite:///:memory:")
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
def store() -> SessionStore:
    return SessionStore(Signer(KEY), TTL)


async def person(db: Database, name: str, role: str = "trader") -> Account:
    async with db.transaction() as conn:
        return await Accounts().create(conn, name, role, now=0.0)  # type: ignore[arg-type]


async def rows(db: Database) -> list[dict[str, object]]:
    async with db.transaction() as conn:
        found = await conn.execute(select(sessions).order_by(sessions.c.created_at))
        return [dict(row) for row in found.mappings()]


def test_the_session_value_and_its_public_form() -> None:
    session = Session("sid", "ann", "trader", "csrf", 5.0, user_id=3, via="oidc")
    assert session.public() == {
        "id": "sid",
        "user": "ann",
        "role": "trader",
        "expires_at": 5.0,
        "via": "oidc",
    }
    assert not session.is_admin
    assert Session("s", "a", "admin", "c", 1.0).is_admin
    assert session.allows("viewer")
    assert session.allows("trader")
    assert not session.allows("admin")
    assert Session("s", "a", "viewer", "c", 1.0).via == "password"
    assert Session("s", "a", "viewer", "c", 1.0).user_id == 0


async def test_create_stores_the_digest_never_the_secret_and_resolves_to_the_same_session(
    database: Database, store: SessionStore
) -> None:
    assert store.ttl_seconds == TTL
    ann = await person(database, "ann")
    async with database.transaction() as conn:
        session, cookie = await store.create(conn, ann, 1_000.0, address="a" * 70, via="oidc")
    assert session.user == "ann"
    assert session.role == "trader"
    assert session.expires_at == 1_100.0
    assert session.user_id == ann.id
    assert session.via == "oidc"
    assert len(session.session_id) == 32
    assert len(session.csrf_token) >= 40
    secret = Signer(KEY).unsign(cookie, "session")
    assert secret is not None
    assert len(secret) >= 40
    assert Signer(KEY).unsign(cookie, "login-csrf") is None  # signed for sessions only
    (row,) = await rows(database)
    assert row == {
        "id": session.session_id,
        "secret_digest": hashlib.sha256(secret.encode()).hexdigest(),
        "user_id": ann.id,
        "role": "trader",
        "csrf_token": session.csrf_token,
        "created_at": 1_000.0,
        "expires_at": 1_100.0,
        "address": "a" * 64,
        "via": "oidc",
    }
    async with database.transaction() as conn:
        assert await store.resolve(conn, cookie, 1_000.0) == session
        plain, _cookie = await store.create(conn, ann, 1_000.0)
    assert plain.via == "password"
    assert (await rows(database))[1]["address"] == ""


async def test_two_sessions_never_share_an_id_secret_or_csrf_token(
    database: Database, store: SessionStore
) -> None:
    ann = await person(database, "ann")
    async with database.transaction() as conn:
        one, cookie_one = await store.create(conn, ann, 0.0)
        two, cookie_two = await store.create(conn, ann, 0.0)
    assert one.session_id != two.session_id
    assert one.csrf_token != two.csrf_token
    assert cookie_one != cookie_two
    async with database.transaction() as conn:
        assert await store.resolve(conn, cookie_one, 1.0) == one
        assert await store.resolve(conn, cookie_two, 1.0) == two


async def test_a_session_lives_until_just_before_its_expiry(
    database: Database, store: SessionStore
) -> None:
    ann = await person(database, "ann")
    async with database.transaction() as conn:
        session, cookie = await store.create(conn, ann, 1_000.0)
        assert await store.resolve(conn, cookie, 1_099.999) == session
        assert await store.resolve(conn, cookie, 1_100.0) is None
        assert await store.resolve(conn, cookie, 1_200.0) is None


async def test_missing_forged_and_foreign_cookies_resolve_to_nothing(
    database: Database, store: SessionStore
) -> None:
    ann = await person(database, "ann")
    async with database.transaction() as conn:
        _session, cookie = await store.create(conn, ann, 0.0)
        assert await store.resolve(conn, None, 1.0) is None
        assert await store.resolve(conn, "", 1.0) is None
        secret = Signer(KEY).unsign(cookie, "session")
        assert secret is not None
        assert await store.resolve(conn, Signer(b"x" * 32).sign(secret, "session"), 1.0) is None
        assert await store.resolve(conn, Signer(KEY).sign("another", "session"), 1.0) is None


async def test_a_disabled_user_has_no_session_and_a_new_role_applies_at_once(
    database: Database, store: SessionStore
) -> None:
    ann = await person(database, "ann")
    async with database.transaction() as conn:
        _session, cookie = await store.create(conn, ann, 0.0)
        await Accounts().set_role(conn, "ann", "admin", 1.0)
        resolved = await store.resolve(conn, cookie, 1.0)
        assert resolved is not None
        assert resolved.role == "admin"
        await conn.execute(update(users).where(users.c.name == "ann").values(role="root"))
        resolved = await store.resolve(conn, cookie, 1.0)
        assert resolved is not None
        assert resolved.role == "viewer"  # an unknown stored role grants the least
        await Accounts().set_disabled(conn, "ann", True, 2.0)
        assert await store.resolve(conn, cookie, 2.0) is None
        await Accounts().set_disabled(conn, "ann", False, 3.0)
        assert await store.resolve(conn, cookie, 3.0) is not None


async def test_creating_a_session_removes_the_expired_ones_only(
    database: Database, store: SessionStore
) -> None:
    ann, bob = await person(database, "ann"), await person(database, "bob")
    async with database.transaction() as conn:
        old, _ = await store.create(conn, ann, 0.0)  # expires at 100
        later, _ = await store.create(conn, bob, 0.5)  # expires at 100.5
        await store.create(conn, bob, 99.0)
    assert len(await rows(database)) == 3  # at 99 nothing had expired yet
    async with database.transaction() as conn:
        await store.create(conn, bob, 100.0)  # ``old`` expires exactly now: removed
    ids = [r["id"] for r in await rows(database)]
    assert old.session_id not in ids
    assert later.session_id in ids
    assert len(ids) == 3


async def test_logging_out_ends_one_session_and_reports_whether_it_existed(
    database: Database, store: SessionStore
) -> None:
    ann = await person(database, "ann")
    async with database.transaction() as conn:
        one, cookie_one = await store.create(conn, ann, 0.0)
        two, cookie_two = await store.create(conn, ann, 0.0)
        assert await store.end(conn, one.session_id) is True
        assert await store.end(conn, one.session_id) is False
        assert await store.end(conn, "nonexistent") is False
        assert await store.resolve(conn, cookie_one, 1.0) is None
        assert await store.resolve(conn, cookie_two, 1.0) == two


async def test_ending_a_users_sessions_returns_their_ids_and_spares_everyone_else(
    database: Database, store: SessionStore
) -> None:
    ann, bob = await person(database, "ann"), await person(database, "bob")
    async with database.transaction() as conn:
        first, _ = await store.create(conn, ann, 0.0)
        second, _ = await store.create(conn, ann, 1.0)
        bobs, bob_cookie = await store.create(conn, bob, 0.0)
        ended = await store.end_all(conn, ann.id)
        assert sorted(ended) == sorted([first.session_id, second.session_id])
        assert await store.of_user(conn, ann.id, 2.0) == []
        assert await store.resolve(conn, bob_cookie, 2.0) == bobs
        assert await store.end_all(conn, ann.id) == []
        total = (await conn.execute(select(func.count()).select_from(sessions))).scalar_one()
    assert total == 1


async def test_a_users_live_sessions_are_listed_newest_first_without_secrets(
    database: Database, store: SessionStore
) -> None:
    ann, bob = await person(database, "ann"), await person(database, "bob")
    async with database.transaction() as conn:
        first, _ = await store.create(conn, ann, 10.0, via="oidc")
        second, _ = await store.create(conn, ann, 30.0)
        third, _ = await store.create(conn, ann, 20.0)
        await store.create(conn, bob, 30.0)
        await Accounts().set_role(conn, "ann", "admin", 31.0)
        listed = await store.of_user(conn, ann.id, 40.0)
        assert [s.session_id for s in listed] == [
            second.session_id,
            third.session_id,
            first.session_id,
        ]
        assert listed[2] == Session(
            first.session_id, "ann", "trader", "", 110.0, user_id=ann.id, via="oidc"
        )  # the role granted at login; the CSRF token is not handed out
        # At 110 the first has just expired; at 109.5 it still counts.
        assert [s.session_id for s in await store.of_user(conn, ann.id, 110.0)] == [
            second.session_id,
            third.session_id,
        ]
        assert len(await store.of_user(conn, ann.id, 109.5)) == 3
