"""``mdp-scp``: run the control plane, or hash a password for its settings.

``mdp-scp serve`` (the default) reads ``ScpSettings`` from the environment and serves until
SIGINT/SIGTERM. ``mdp-scp hash-password`` reads a password (prompt, or stdin when piped) and
prints the scrypt hash to put in ``MDP_SCP_ADMIN_PASSWORD_HASH`` or the users file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
from importlib.metadata import version

from mdp_core.logging import configure_logging
from mdp_core.settings import SettingsError, load
from mdp_core.telemetry import configure_telemetry
from mdp_runtime import TrustedProxies, settings_help
from mdp_scp.app import ControlPlane
from mdp_scp.passwords import hash_password
from mdp_scp.settings import ScpSettings
from mdp_scp.users import UsersFileError

__all__ = ["main"]


async def _serve(settings: ScpSettings) -> None:
    plane = ControlPlane(settings)
    if not plane.users.has_admin and plane.oidc is None:
        password = plane.create_first_admin(settings.admin_user)
        print(
            f"No administrator configured: created {settings.admin_user!r} with password "
            f"{password}\nSet MDP_SCP_ADMIN_PASSWORD_HASH to keep a fixed one.",
            file=sys.stderr,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await plane.start()
    try:
        await stop.wait()
    finally:
        await plane.stop()


def _hash_password() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("The passwords differ.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("A password must not be empty.", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mdp-scp`` console script."""
    parser = argparse.ArgumentParser(
        prog="mdp-scp",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog=settings_help([ScpSettings]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "hash-password"])
    parser.add_argument("--version", action="version", version=f"mdp-scp {version('mdp-scp')}")
    args = parser.parse_args(argv)
    if args.command == "hash-password":
        return _hash_password()
    try:
        settings = load(ScpSettings, service_name="mdp-scp")
    except SettingsError as exc:
        print(f"mdp-scp: {exc}", file=sys.stderr)
        return 2
    try:
        TrustedProxies(settings.trusted_proxies)
    except ValueError as exc:
        print(f"mdp-scp: MDP_SCP_TRUSTED_PROXIES: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    configure_telemetry("mdp-scp", version("mdp-scp"))
    try:
        asyncio.run(_serve(settings))
    except UsersFileError as exc:
        print(f"mdp-scp: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
