"""The SCP's Alembic migrations walk both ways on both backends (SQLite file, real PostgreSQL).

``upgrade head -> downgrade base -> upgrade head`` must leave exactly the declared schema, and
each revision's ``downgrade`` must undo exactly its own ``upgrade``: an operator rolling back a
release runs them one at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from mdp_scp.database import Database, alembic_config
from mdp_scp.schema import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scp.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    yield db
    await db.close()


def _alembic(connection: Connection, verb: str, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, verb)(config, target)


async def _run(db: Database, verb: str, target: str) -> None:
    async with db.engine.connect() as connection:
        await connection.run_sync(_alembic, verb, target)
        await connection.commit()


async def _tables(db: Database) -> set[str]:
    def names(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with db.engine.connect() as connection:
        return await connection.run_sync(names)


async def _differences(db: Database) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with db.engine.connect() as connection:
        return await connection.run_sync(compare)


async def _current(db: Database) -> str | None:
    def revision(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        return await connection.run_sync(revision)


async def test_upgrade_downgrade_base_upgrade_leaves_exactly_the_declared_schema(
    database: Database,
) -> None:
    declared = set(metadata.tables)
    await database.migrate()
    assert await _tables(database) == declared | {"alembic_version"}
    await _run(database, "downgrade", "base")
    assert await _tables(database) <= {"alembic_version"}  # nothing of ours is left behind
    assert await _current(database) is None
    await database.migrate()
    assert await _tables(database) == declared | {"alembic_version"}
    assert await _differences(database) == []


async def test_each_revision_downgrades_to_its_predecessor_and_upgrades_again(
    database: Database,
) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(script.walk_revisions("base", "heads"))))  # oldest first
    assert revisions, "no migrations found"
    tables_at: dict[str | None, set[str]] = {None: await _tables(database)}
    for revision in revisions:
        await _run(database, "upgrade", revision.revision)
        assert await _current(database) == revision.revision
        tables_at[revision.revision] = await _tables(database)
    for revision in reversed(revisions):
        await _run(database, "downgrade", "-1")
        previous = revision.down_revision
        assert previous is None or isinstance(previous, str)  # no merge revisions here
        assert await _current(database) == previous
        assert await _tables(database) - {"alembic_version"} == tables_at[previous] - {
            "alembic_version"
        }
    await database.migrate()
    assert await _differences(database) == []
