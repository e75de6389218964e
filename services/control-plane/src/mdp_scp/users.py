"""Local user accounts: names, roles and password hashes (never passwords).

These are the *seed* users: at start-up the control plane writes them into its database
(:mod:`mdp_scp.accounts`), where every other account lives. They come from settings (one
administrator from ``MDP_SCP_ADMIN_USER`` + ``MDP_SCP_ADMIN_PASSWORD_HASH``), from a JSON
users file, or from :meth:`UserStore.create_first_admin`, which the demo calls to print a random
password for the run (reusable until the process stops; never stored, only its hash).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mdp_scp.passwords import (
    MalformedPasswordHash,
    generate_password,
    hash_password,
    parse_hash,
    verify_password,
)

__all__ = [
    "ROLES",
    "Role",
    "User",
    "UserStore",
    "UsersFileError",
    "parse_role",
    "role_at_least",
]

Role = Literal["viewer", "trader", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "trader", "admin")
"""Roles from least to most powerful; each grants what the ones before it grant."""


def role_at_least(role: str, needed: Role) -> bool:
    """Whether ``role`` grants what ``needed`` grants (unknown roles grant nothing)."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def parse_role(value: object) -> Role | None:
    """``value`` as a role, or None when it is not one of :data:`ROLES`."""
    for role in ROLES:
        if value == role:
            return role
    return None


class UsersFileError(ValueError):
    """The users file is unreadable or not a list of ``{name, role, password_hash}``."""


@dataclass(frozen=True, slots=True)
class User:
    """An account allowed to log in.

    Attributes:
        name: the login name (case-sensitive).
        role: ``viewer`` (dashboard and health), ``trader`` (also the listeners'
            subscriptions) or ``admin`` (also every runtime control and user management).
        password_hash: the scrypt hash, or empty for accounts that only log in via OIDC.
    """

    name: str
    role: Role
    password_hash: str = ""

    @property
    def is_admin(self) -> bool:
        """Whether the user may use runtime controls."""
        return self.role == "admin"


def _role(value: object, where: str) -> Role:
    role = parse_role(value)
    if role is None:
        msg = f"{where}: role must be one of {', '.join(ROLES)}; it was {value!r}"
        raise UsersFileError(msg)
    return role


class UserStore:
    """The in-memory set of local users."""

    def __init__(self, users: list[User] | None = None) -> None:
        self._users: dict[str, User] = {}
        # A valid hash of a random password: verifying against it costs what a real check costs.
        self._decoy = hash_password(generate_password())
        for user in users or []:
            self.add(user)

    def add(self, user: User) -> None:
        """Add or replace ``user``.

        Raises:
            MalformedPasswordHash: if the user has a password hash that cannot be parsed.
        """
        if user.password_hash:
            parse_hash(user.password_hash)
        self._users[user.name] = user

    def get(self, name: str) -> User | None:
        """The user called ``name``, if any."""
        return self._users.get(name)

    def __len__(self) -> int:
        return len(self._users)

    def all(self) -> list[User]:
        """Every seed user."""
        return list(self._users.values())

    @property
    def has_admin(self) -> bool:
        """Whether any administrator exists (the demo creates one when not)."""
        return any(user.is_admin for user in self._users.values())

    def create_first_admin(self, name: str = "admin") -> str:
        """Create administrator ``name`` with a random password and return that password once.

        The password itself is not kept; only its hash is. The caller prints it.
        """
        password = generate_password()
        self.add(User(name=name, role="admin", password_hash=hash_password(password)))
        return password

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right, else None; same cost whether or not ``name`` exists.

        This runs scrypt (tens of milliseconds): call :meth:`authenticate` from async code.
        """
        user = self._users.get(name)
        stored = user.password_hash if user is not None and user.password_hash else self._decoy
        matches = verify_password(password, stored)
        if user is None or not user.password_hash or not matches:
            return None
        return user

    async def authenticate(self, name: str, password: str) -> User | None:
        """:meth:`check_password` in a worker thread, so the event loop keeps serving."""
        return await asyncio.to_thread(self.check_password, name, password)

    @classmethod
    def from_file(cls, path: Path) -> UserStore:
        """Load users from a JSON list of ``{"name", "role", "password_hash"}`` objects.

        Raises:
            UsersFileError: if the file is unreadable or malformed (naming the entry).
        """
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsersFileError(f"cannot read users file {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise UsersFileError(f"users file {path} is not JSON: {exc.msg}") from exc
        if not isinstance(document, list):
            raise UsersFileError(f"users file {path} must hold a JSON list of users")
        store = cls()
        for index, entry in enumerate(document):
            where = f"{path} entry {index}"
            if not isinstance(entry, dict):
                raise UsersFileError(f"{where}: must be an object")
            name, stored = entry.get("name"), entry.get("password_hash", "")
            if not isinstance(name, str) or not name or not isinstance(stored, str):
                raise UsersFileError(f"{where}: needs a name and a password_hash string")
            try:
                store.add(
                    User(name=name, role=_role(entry.get("role"), where), password_hash=stored)
                )
            except MalformedPasswordHash as exc:
                raise UsersFileError(f"{where}: {exc}") from exc
        return store
