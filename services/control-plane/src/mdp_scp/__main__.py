"""``mdp-scp``: run the control plane, migrate its database, or create an administrator.

``mdp-scp serve`` (the default) reads ``ScpSettings`` from the environment and serves until
SIGINT/SIGTERM. ``mdp-scp migrate`` brings the database schema up to date and exits.
``mdp-scp create-admin NAME`` creates (or resets) administrator NAME in the database with a
password read from a prompt or stdin: the one-off way to get a first administrator.
``mdp-scp hash-password`` reads a password and prints the scrypt hash to put in
``MDP_SCP_ADMIN_PASSWORD_HASH`` or the users file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
import time
from importlib.metadata import version

from mdp_core.logging import configure_logging
from mdp_core.settings import SettingsError, load
from mdp_core.telemetry import configure_telemetry
from mdp_core.token import secret_problem
from mdp_runtime import TrustedProxies, settings_help
from mdp_scp.accounts import Accounts
from mdp_scp.app import ControlPlane
from mdp_scp.audit import AuditLog
from mdp_scp.database import Database, StoreUnavailable
from mdp_scp.passwords import hash_password
from mdp_scp.settings import ScpSettings
from mdp_scp.users import UsersFileError

__all__ = ["main"]


async def _serve(settings: ScpSettings) -> None:
    plane = ControlPlane(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await plane.start()
    if plane.oidc is None:
        password = await plane.ensure_admin(settings.admin_user)
        if password is not None:
            print(
                f"No administrator in the database: created {settings.admin_user!r} with the "
                f"one-time password {password}\nChange it, or use `mdp-scp create-admin`.",
                file=sys.stderr,
            )
    try:
        await stop.wait()
    finally:
        await plane.stop()


def _read_password() -> str | None:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("The passwords differ.", file=sys.stderr)
            return None
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("A password must not be empty.", file=sys.stderr)
        return None
    return password


def _hash_password() -> int:
    password = _read_password()
    if password is None:
        return 1
    print(hash_password(password))
    return 0


async def _migrate(settings: ScpSettings) -> None:
    database = Database(settings.database)
    try:
        await database.migrate()
    finally:
        await database.close()


async def _create_admin(settings: ScpSettings, name: str, password: str) -> str:
    database = Database(settings.database)
    accounts, audit = Accounts(), AuditLog()
    now = time.time()
    try:
        await database.migrate()
        async with database.transaction() as conn:
            hashed = hash_password(password)
            if await accounts.get(conn, name) is None:
                await accounts.create(conn, name, "admin", now=now, password_hash=hashed)
                done = "created"
            else:
                await accounts.set_role(conn, name, "admin", now)
                await accounts.set_password(conn, name, hashed, now)
                await accounts.set_disabled(conn, name, False, now)
                done = "reset"
            await audit.record(
                conn,
                at=now,
                actor="mdp-scp create-admin",
                action=f"user.{done}-admin",
                target=name,
                result="ok",
            )
    finally:
        await database.close()
    return done


def _config_problem(settings: ScpSettings) -> str | None:
    """What the settings loader cannot see: the proxies' syntax and the token secret's size."""
    try:
        TrustedProxies(settings.trusted_proxies)
    except ValueError as exc:
        return f"MDP_SCP_TRUSTED_PROXIES: {exc}"
    secret = settings.wds_token_secret
    return None if secret is None else secret_problem(secret.reveal())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mdp-scp`` console script."""
    parser = argparse.ArgumentParser(
        prog="mdp-scp",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog=settings_help([ScpSettings]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "create-admin", "hash-password"],
    )
    parser.add_argument("name", nargs="?", help="the administrator's name (create-admin)")
    parser.add_argument("--version", action="version", version=f"mdp-scp {version('mdp-scp')}")
    args = parser.parse_args(argv)
    if args.command == "hash-password":
        return _hash_password()
    try:
        settings = load(ScpSettings, service_name="mdp-scp")
    except SettingsError as exc:
        print(f"mdp-scp: {exc}", file=sys.stderr)
        return 2
    problem = _config_problem(settings)
    if problem is not None:
        print(f"mdp-scp: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    if args.command in ("migrate", "create-admin"):
        return _one_off(settings, args.command, args.name)
    configure_telemetry("mdp-scp", version("mdp-scp"))
    try:
        asyncio.run(_serve(settings))
    except UsersFileError as exc:
        print(f"mdp-scp: {exc}", file=sys.stderr)
        return 2
    return 0


def _one_off(settings: ScpSettings, command: str, name: str | None) -> int:
    try:
        if command == "migrate":
            asyncio.run(_migrate(settings))
            print("mdp-scp: the database schema is up to date", file=sys.stderr)
            return 0
        if not name:
            print("mdp-scp: create-admin needs a NAME", file=sys.stderr)
            return 2
        password = _read_password()
        if password is None:
            return 1
        done = asyncio.run(_create_admin(settings, name, password))
    except StoreUnavailable as exc:
        print(f"mdp-scp: the database is unavailable: {exc}", file=sys.stderr)
        return 3
    print(f"mdp-scp: administrator {name!r} {done}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
