"""The SCP's store on both backends it supports: SQLite (a file) and a real PostgreSQL.

Sessions, the shared login throttle, accounts, the audit log, API tokens and watchlists are
exercised through the same code the web layer uses, with two :class:`Database` objects on one
database standing for two replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select

from mdp_scp.accounts import Accounts, DuplicateName
from mdp_scp.api_tokens import ApiTokens
from mdp_scp.audit import AuditLog
from mdp_scp.database import BadValue, Database, StoreUnavailable
from mdp_scp.login_throttle import LoginThrottle
from mdp_scp.passwords import ScryptParameters, hash_password
from mdp_scp.schema import metadata, users
from mdp_scp.sessions import SessionStore, Signer
from mdp_scp.users import Role
from mdp_scp.watchlists import WatchlistError, Watchlists

FAST = ScryptParameters(n=1 << 10)
KEY = b"k" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scp.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def database(store_url: str) -> AsyncIterator[Database]:
    db = Database(store_url)
    await db.migrate()
    yield db
    await db.close()


async def test_migrations_build_exactly_the_declared_schema_and_rerun_harmlessly(
    database: Database,
) -> None:
    await database.migrate()  # a second replica starting: nothing to do, nothing breaks

    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_concurrent_migrations_by_two_replicas_both_succeed(store_url: str) -> None:
    first, second = Database(store_url), Database(store_url)
    try:
        await asyncio.gather(first.migrate(), second.migrate())
        async with first.transaction() as conn:
            assert await Accounts().count(conn) == 0
    finally:
        await first.close()
        await second.close()


async def _person(db: Database, name: str, role: Role = "viewer") -> int:
    async with db.transaction() as conn:
        account = await Accounts().create(
            conn,
            name,
            role,
            now=0.0,
            password_hash=hash_password("pw-123456", FAST),
        )
    return account.id


async def test_a_session_made_by_one_replica_resolves_on_another_until_it_ends(
    store_url: str, database: Database
) -> None:
    other = Database(store_url)
    try:
        await _person(database, "ann")
        one, two = SessionStore(Signer(KEY), 100), SessionStore(Signer(KEY), 100)
        async with database.transaction() as conn:
            account = await Accounts().require(conn, "ann")
            session, cookie = await one.create(conn, account, 1_000.0, address="10.0.0.1")
        assert session.session_id not in cookie
        async with other.transaction() as conn:
            assert await two.resolve(conn, cookie, 1_099.0) == session
            assert await two.resolve(conn, cookie, 1_100.0) is None  # expired on the server
            forged = Signer(b"y" * 32).sign(cookie.rpartition(".")[0], "session")
            assert await two.resolve(conn, forged, 1_050.0) is None
            assert await two.end(conn, session.session_id)
        async with database.transaction() as conn:
            assert await one.resolve(conn, cookie, 1_001.0) is None
    finally:
        await other.close()


async def test_disabling_a_user_voids_its_sessions_and_tokens(database: Database) -> None:
    await _person(database, "bob", "trader")
    accounts, sessions, tokens = Accounts(), SessionStore(Signer(KEY), 100), ApiTokens()
    async with database.transaction() as conn:
        account = await accounts.require(conn, "bob")
        _session, cookie = await sessions.create(conn, account, 0.0)
        _id, token = await tokens.create(
            conn, user_id=account.id, name="ci", role="viewer", now=0.0, expires_at=50.0
        )
    async with database.transaction() as conn:
        assert (await sessions.resolve(conn, cookie, 1.0)) is not None
        resolved = await tokens.resolve(conn, token, 1.0)
        assert resolved is not None
        assert resolved.role == "viewer"  # the token's own role, below its owner's
        await accounts.set_disabled(conn, "bob", True, 2.0)
    async with database.transaction() as conn:
        assert await sessions.resolve(conn, cookie, 3.0) is None
        assert await tokens.resolve(conn, token, 3.0) is None


async def test_api_tokens_expire_are_revocable_and_never_outrank_their_owner(
    database: Database,
) -> None:
    await _person(database, "cy", "admin")
    accounts, tokens = Accounts(), ApiTokens()
    async with database.transaction() as conn:
        owner = await accounts.require(conn, "cy")
        token_id, token = await tokens.create(
            conn, user_id=owner.id, name="deploy", role="admin", now=0.0, expires_at=100.0
        )
        stored = (await tokens.list(conn, owner.id))[0]
    assert token_id in token
    # The secret follows the id; it may hold "_" itself (URL-safe base64).
    secret = token.partition(f"{token_id}_")[2]
    assert len(secret) == 43  # token_urlsafe(32)
    assert secret not in repr(stored)
    async with database.transaction() as conn:
        assert (await tokens.resolve(conn, token, 99.0)) is not None
        assert await tokens.resolve(conn, token, 100.0) is None  # expired
        assert await tokens.resolve(conn, token[:-1] + "x", 50.0) is None  # wrong secret
        await accounts.set_role(conn, "cy", "viewer", 1.0)
        demoted = await tokens.resolve(conn, token, 50.0)
        assert demoted is not None
        assert demoted.role == "viewer"  # an owner's demotion demotes the token
        assert await tokens.revoke(conn, token_id, 51.0)
        assert await tokens.resolve(conn, token, 52.0) is None


async def test_the_login_throttle_is_shared_and_race_free_across_replicas(
    store_url: str, database: Database
) -> None:
    other = Database(store_url)
    try:
        throttles = [LoginThrottle(database, 60.0), LoginThrottle(other, 60.0)]
        limits = {"user:ann@a": 5, "addr:a": 20}
        attempts = await asyncio.gather(
            *(throttles[i % 2].attempt(limits, 10.0) for i in range(30))
        )
        assert sum(a.allowed for a in attempts) == 5  # whichever replica each reached
        refused = next(a for a in attempts if not a.allowed)
        assert 0 < refused.retry_after <= 60.0
        # Refused attempts took their rows back: the window ends 60 s after the 5 failures.
        assert await throttles[0].count("user:ann@a", 11.0) == 5
        assert (await throttles[1].attempt(limits, 70.5)).allowed
    finally:
        await other.close()


async def test_a_success_clears_the_user_key_but_not_the_address(database: Database) -> None:
    throttle = LoginThrottle(database, 60.0)
    limits = {"user:ann@a": 2, "addr:a": 3}
    for _ in range(2):
        assert (await throttle.attempt(limits, 0.0)).allowed
    success = await throttle.attempt({"user:ann@b": 2, "addr:a": 3}, 1.0)
    assert success.allowed
    async with database.transaction() as conn:
        await throttle.succeeded(conn, "user:ann@b", success)
    assert await throttle.count("addr:a", 2.0) == 2  # the two failures still count
    assert await throttle.count("user:ann@b", 2.0) == 0
    assert not (await throttle.attempt(limits, 2.0)).allowed  # ann@a: still blocked


async def test_duplicate_names_are_refused_and_leave_nothing_half_written(
    database: Database,
) -> None:
    accounts, audit = Accounts(), AuditLog()
    await _person(database, "dee")

    async def create_with_its_record() -> None:
        async with database.transaction() as conn:
            await audit.record(conn, at=1.0, actor="root", action="user.create", result="ok",
                               target="dee")  # fmt: skip
            await accounts.create(conn, "dee", "admin", now=1.0)

    with pytest.raises(DuplicateName):
        await create_with_its_record()
    async with database.transaction() as conn:
        assert await audit.query(conn) == []  # the audit row rolled back with the change
        count = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
        assert count == 1
        assert (await accounts.require(conn, "dee")).role == "viewer"


async def test_the_audit_log_filters_by_user_and_action_newest_first(database: Database) -> None:
    audit = AuditLog()
    async with database.transaction() as conn:
        for at, actor, action in [
            (1.0, "ann", "login"), (2.0, "root", "user.create"), (3.0, "root", "user.role"),
            (4.0, "ann", "control.listener.stop"), (5.0, "root", "login"),
        ]:  # fmt: skip
            await audit.record(conn, at=at, actor=actor, action=action, result="ok")
    async with database.transaction() as conn:
        assert [e.at for e in await audit.query(conn, actor="root")] == [5.0, 3.0, 2.0]
        assert [e.at for e in await audit.query(conn, action="login")] == [5.0, 1.0]
        assert [e.action for e in await audit.query(conn, actor="root", action="user.")] == [
            "user.role",
            "user.create",
        ]
        assert [e.at for e in await audit.query(conn, before=3.0, limit=1)] == [2.0]


async def test_a_nul_in_text_is_a_bad_value_and_its_statement_keeps_its_values(
    database: Database, store_url: str
) -> None:
    # PostgreSQL text holds no NUL: its error was a 500 whose log carried the statement's
    # values (a new token's digest, a login's name and address).
    audit = AuditLog()
    if store_url.startswith("sqlite"):
        async with database.transaction() as conn:  # SQLite stores it: nothing to refuse
            assert await audit.query(conn, actor="a\x00") == []
        return
    with pytest.raises(BadValue) as caught:
        async with database.transaction() as conn:
            await audit.query(conn, actor="secret-name\x00")
    assert str(caught.value) == "22021"  # character_not_in_repertoire
    assert "secret-name" not in str(caught.value.__cause__)
    async with database.transaction() as conn:  # the pool is fine afterwards
        assert await audit.query(conn, actor="ann") == []


async def test_watchlists_keep_their_limits_and_the_layout_round_trips(
    database: Database,
) -> None:
    user_id = await _person(database, "eve")
    lists = Watchlists(max_lists=2, max_symbols=3)
    async with database.transaction() as conn:
        assert await lists.put(conn, user_id, lists.clean("Tech", ["aapl", "MSFT", "aapl"]), 0.0)
        assert not await lists.put(conn, user_id, lists.clean("Tech", ["NVDA"]), 1.0)
        assert await lists.put(conn, user_id, lists.clean("Banks", ["JPM"]), 1.0)
        with pytest.raises(WatchlistError, match="at most 2 watchlists"):
            await lists.put(conn, user_id, lists.clean("Third", []), 2.0)
        await lists.save_layout(conn, user_id, {"sort": {"gainers": "-pct"}}, 2.0)
    with pytest.raises(WatchlistError, match="at most 3 symbols"):
        lists.clean("Big", ["A", "B", "C", "D"])
    with pytest.raises(WatchlistError, match="not a symbol"):
        lists.clean("Bad", ["DROP TABLE"])
    async with database.transaction() as conn:
        assert [w.public() for w in await lists.of(conn, user_id)] == [
            {"name": "Tech", "symbols": ["NVDA"]},
            {"name": "Banks", "symbols": ["JPM"]},
        ]
        assert await lists.layout(conn, user_id) == {"sort": {"gainers": "-pct"}}


async def test_an_unreachable_database_is_reported_as_unavailable() -> None:
    from mdp_core.ports import free_port as _free_port  # a port nothing listens on

    db = Database(f"postgresql://postgres@127.0.0.1:{_free_port()}/none")
    try:
        with pytest.raises(StoreUnavailable):
            async with db.transaction() as conn:
                await conn.execute(select(1))
        with pytest.raises(StoreUnavailable):
            await db.migrate()
    finally:
        await db.close()
