"""The management API: users, sessions, audit log, API tokens, watchlists, layout, runtime.

Every route is declared once in :data:`ROUTES` (method, path, role, summary): that table
registers the handlers and generates ``docs/reference/scp-api.md``. Every call is authorised
by role, CSRF-protected for browser sessions (bearer tokens need none), and every change is
written together with its audit record in one transaction. Bodies are small JSON objects
checked against a schema: unknown fields, wrong types, unknown roles and oversized bodies get
a clear ``400``/``413``, counted by reason.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
import structlog
from aiohttp import web

from mdp_cache.client import REDIS_ERRORS
from mdp_cache.control import ALL_INSTANCES, COMMANDS, Desired, read_desired, write_desired
from mdp_scp.accounts import Account, DuplicateName, NoSuchUser
from mdp_scp.passwords import generate_password, hash_password
from mdp_scp.users import ROLES, Role, parse_role, role_at_least
from mdp_scp.watchlists import WatchlistError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from mdp_scp.app import ControlPlane
    from mdp_scp.sessions import Session

__all__ = ["MAX_BODY_BYTES", "ROUTES", "ApiRoute", "register_management_routes"]

_log = structlog.get_logger("mdp_scp")

MAX_BODY_BYTES: Final = 16 * 1024
_DAY: Final = 86_400.0
_NAME_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-+"
)

T = TypeVar("T")
Handler = Callable[["ControlPlane", web.Request, "Session"], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One route of the management API.

    Attributes:
        method: the HTTP method.
        path: the aiohttp path pattern.
        role: the least role that may call it.
        summary: one line for the reference.
        body: the JSON body it accepts, as shown in the reference (empty: none).
        handler: the coroutine serving it.
    """

    method: str
    path: str
    role: Role
    summary: str
    body: str
    handler: Handler


# --------------------------------------------------------------------------------- bodies


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str
    password: str | None = None
    kind: str = "person"


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    role: str | None = None
    disabled: bool | None = None


class PasswordReset(msgspec.Struct, forbid_unknown_fields=True):
    password: str | None = None


class NewToken(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str | None = None
    expires_in_days: int = 90


class WatchlistBody(msgspec.Struct, forbid_unknown_fields=True):
    symbols: list[str]


class LayoutBody(msgspec.Struct, forbid_unknown_fields=True):
    layout: dict[str, Any]


def _bad(plane: ControlPlane, reason: str, message: str) -> web.HTTPBadRequest:
    plane.metrics.bad_requests.labels(reason).inc()
    return web.HTTPBadRequest(reason=message)


async def _body(plane: ControlPlane, request: web.Request, kind: type[T]) -> T:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        plane.metrics.bad_requests.labels("too_large").inc()
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES, actual_size=request.content_length
        )
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        plane.metrics.bad_requests.labels("too_large").inc()
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=len(raw))
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise _bad(plane, "invalid_body", f"invalid body: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # strings must be UTF-8 too
        raise _bad(plane, "not_json", "the request body is not a JSON object") from exc


def _role_of(plane: ControlPlane, value: str) -> Role:
    role = parse_role(value)
    if role is None:
        raise _bad(plane, "unknown_role", f"unknown role {value[:40]!r}; roles: {', '.join(ROLES)}")
    return role


def _check_name(plane: ControlPlane, name: str) -> str:
    if not 1 <= len(name) <= 200 or not set(name) <= _NAME_CHARS:
        raise _bad(
            plane, "bad_name", "a user name has 1 to 200 letters, digits or . _ @ - + characters"
        )
    return name


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def _record(
    plane: ControlPlane,
    conn: AsyncConnection,
    request: web.Request,
    session: Session,
    action: str,
    *,
    target: str,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    actor = session.user if session.via != "token" else f"{session.user} ({session.session_id})"
    await plane.audit.record(
        conn,
        at=plane.now(),
        actor=actor,
        action=action,
        target=target,
        result=result,
        address=plane.client_address(request),
        detail=detail,
    )


async def _target(plane: ControlPlane, conn: AsyncConnection, name: str) -> Account:
    try:
        return await plane.accounts.require(conn, name)
    except NoSuchUser as exc:
        raise web.HTTPNotFound(reason=f"no user {name[:60]!r}") from exc


async def _keeps_an_admin(
    plane: ControlPlane, conn: AsyncConnection, account: Account, role: Role, disabled: bool
) -> None:
    """Refuse a change that would leave no enabled administrator (409)."""
    if account.role != "admin" or account.disabled or (role == "admin" and not disabled):
        return
    admins = [a for a in await plane.accounts.list(conn) if a.role == "admin" and not a.disabled]
    if len(admins) <= 1:
        raise web.HTTPConflict(reason="this would leave no enabled administrator")


# --------------------------------------------------------------------------------- users


async def list_users(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Every user with role, kind, state and source."""
    del request, session
    async with plane.database.transaction() as conn:
        accounts = await plane.accounts.list(conn)
    return _json({"users": [a.public() for a in accounts]})


async def create_user(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Create a person (password given or generated, shown once) or a service account."""
    body = await _body(plane, request, NewUser)
    name = _check_name(plane, body.name)
    role = _role_of(plane, body.role)
    if body.kind not in ("person", "service"):
        raise _bad(plane, "bad_kind", "kind is 'person' or 'service'")
    if body.password is not None and not 8 <= len(body.password) <= 1024:
        raise _bad(plane, "bad_password", "a password has 8 to 1024 characters")
    password = None
    if body.kind == "person":
        password = body.password or generate_password()
    hashed = hash_password(password) if password else ""
    now = plane.now()
    async with plane.database.transaction() as conn:
        try:
            account = await plane.accounts.create(
                conn,
                name,
                role,
                now=now,
                password_hash=hashed,
                kind="service" if body.kind == "service" else "person",
            )
        except DuplicateName as exc:
            plane.metrics.bad_requests.labels("duplicate_name").inc()
            raise web.HTTPConflict(reason=f"a user called {name!r} exists already") from exc
        await _record(
            plane,
            conn,
            request,
            session,
            "user.create",
            target=name,
            detail={"role": role, "kind": body.kind},
        )
    reply: dict[str, Any] = {"user": account.public()}
    if password is not None and body.password is None:
        reply["password"] = password  # generated: shown this once
    return _json(reply, 201)


async def change_user(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Change a user's role and/or disable or enable it (disabling ends its sessions)."""
    body = await _body(plane, request, UserChange)
    name = request.match_info["name"]
    if body.role is None and body.disabled is None:
        raise _bad(plane, "empty_change", "give a role and/or disabled")
    role = _role_of(plane, body.role) if body.role is not None else None
    now = plane.now()
    ended: list[str] = []
    async with plane.database.transaction() as conn:
        account = await _target(plane, conn, name)
        if account.source == "settings":
            raise web.HTTPConflict(
                reason="this user comes from the settings or users file; change it there"
            )
        new_role = role or account.role
        disabled = account.disabled if body.disabled is None else body.disabled
        await _keeps_an_admin(plane, conn, account, new_role, disabled)
        if role is not None and role != account.role:
            await plane.accounts.set_role(conn, name, role, now)
            await _record(
                plane,
                conn,
                request,
                session,
                "user.role",
                target=name,
                detail={"from": account.role, "to": role},
            )
        if disabled != account.disabled:
            await plane.accounts.set_disabled(conn, name, disabled, now)
            sessions_ended = 0
            if disabled:
                ended = await plane.sessions.end_all(conn, account.id)
                sessions_ended = len(ended)
                # The WDS tokens its API tokens got (sid token:<id>) end too: the API tokens
                # are refused from now on, but what they were given lived on to its expiry.
                ended += [
                    f"token:{t.id}"
                    for t in await plane.tokens.list(conn, account.id)
                    if t.revoked_at is None and t.expires_at > now
                ]
            await _record(
                plane,
                conn,
                request,
                session,
                "user.disable" if disabled else "user.enable",
                target=name,
                detail={"sessions_ended": sessions_ended} if disabled else None,
            )
        updated = await plane.accounts.require(conn, name)
    await plane.revoke_wds(ended)
    return _json({"user": updated.public()})


async def reset_password(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Set a new password (given, or generated and shown once); ends the user's sessions."""
    body = await _body(plane, request, PasswordReset)
    name = request.match_info["name"]
    if body.password is not None and not 8 <= len(body.password) <= 1024:
        raise _bad(plane, "bad_password", "a password has 8 to 1024 characters")
    password = body.password or generate_password()
    hashed = hash_password(password)
    async with plane.database.transaction() as conn:
        account = await _target(plane, conn, name)
        if account.kind == "service":
            raise web.HTTPConflict(reason="a service account has tokens, not a password")
        if account.source == "settings":
            raise web.HTTPConflict(
                reason="this user comes from the settings or users file; change it there"
            )
        await plane.accounts.set_password(conn, name, hashed, plane.now())
        ended = await plane.sessions.end_all(conn, account.id)
        await _record(
            plane,
            conn,
            request,
            session,
            "user.password",
            target=name,
            detail={"sessions_ended": len(ended)},
        )
    await plane.revoke_wds(ended)
    return _json({"password": password} if body.password is None else {"ok": True})


async def user_sessions(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """The user's live sessions."""
    del session
    async with plane.database.transaction() as conn:
        account = await _target(plane, conn, request.match_info["name"])
        found = await plane.sessions.of_user(conn, account.id, plane.now())
    return _json({"sessions": [s.public() for s in found]})


async def end_sessions(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """End every session of the user (their WDS tokens are revoked too)."""
    name = request.match_info["name"]
    async with plane.database.transaction() as conn:
        account = await _target(plane, conn, name)
        ended = await plane.sessions.end_all(conn, account.id)
        await _record(
            plane,
            conn,
            request,
            session,
            "user.sessions.end",
            target=name,
            detail={"sessions_ended": len(ended)},
        )
    await plane.revoke_wds(ended)
    return _json({"ended": len(ended)})


# --------------------------------------------------------------------------------- audit


async def audit(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Read the audit log, newest first.

    Filters: ``?user=``, ``?action=`` (``user.`` for a family), ``?before=`` (Unix seconds, to
    page) and ``?limit=`` (at most 500).
    """
    del session
    query = request.query
    try:
        before = float(query["before"]) if "before" in query else None
        limit = int(query.get("limit", "100"))
    except ValueError as exc:
        raise _bad(plane, "bad_query", "before is a number and limit an integer") from exc
    async with plane.database.transaction() as conn:
        entries = await plane.audit.query(
            conn,
            actor=query.get("user") or None,
            action=query.get("action") or None,
            before=before,
            limit=limit,
        )
    return _json({"entries": [e.public() for e in entries]})


# --------------------------------------------------------------------------------- runtime


class _RuntimeBody(msgspec.Struct, forbid_unknown_fields=True):
    instance: str = ALL_INSTANCES


def _control_store(plane: ControlPlane) -> Any:
    store = plane.control_store
    if store is None:
        raise web.HTTPServiceUnavailable(reason="the control plane has no market data cache")
    return store


async def runtime_states(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """The runtime orders in force for every controllable component, and its commands."""
    del request, session
    store = _control_store(plane)
    found: dict[str, object] = {}
    for component, commands in COMMANDS.items():
        try:
            orders = await read_desired(store, component)
        except REDIS_ERRORS as exc:
            raise _unavailable(plane, exc) from exc
        found[component] = {
            "commands": dict(commands),
            "orders": {
                name: {"state": o.state, "by": o.by, "at": o.ts_ms / 1000}
                for name, o in sorted(orders.items())
            },
        }
    return _json({"components": found})


def _unavailable(plane: ControlPlane, exc: BaseException) -> web.HTTPServiceUnavailable:
    plane.metrics.bad_requests.labels("control_store_down").inc()
    _log.warning("runtime_control_store_unavailable", error=type(exc).__name__)
    return web.HTTPServiceUnavailable(
        reason="the market data cache cannot be reached; retry shortly",
        headers={"Retry-After": "5"},
    )


async def runtime_command(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Pause, resume or drain a component (every instance, or the one named in the body).

    The order is written to the component's control hash in the market data cache; each
    instance applies it within its poll interval and reports the state it reached in its
    heartbeat (the admin page's State column). Unknown components and commands get ``404``,
    audited with the result ``unknown``.
    """
    component, command = request.match_info["component"], request.match_info["command"]
    state = COMMANDS.get(component, {}).get(command)
    action = f"runtime.{component[:40]}.{command[:40]}"
    if state is None:
        plane.metrics.bad_requests.labels("unknown_command").inc()
        async with plane.database.transaction() as conn:
            await _record(
                plane, conn, request, session, action, target=component[:80], result="unknown"
            )
        known = "; ".join(f"{c}: {', '.join(cmds)}" for c, cmds in COMMANDS.items())
        raise web.HTTPNotFound(
            reason=f"no runtime command {command[:40]!r} for {component[:40]!r}; known: {known}"
        )
    body = _RuntimeBody()
    if request.can_read_body:
        body = await _body(plane, request, _RuntimeBody)
    instance = body.instance
    if instance != ALL_INSTANCES and (
        not 1 <= len(instance) <= 200 or not set(instance) <= _NAME_CHARS
    ):
        raise _bad(plane, "bad_instance", "an instance is '*' or a heartbeat instance id")
    order = Desired(state, session.user, int(plane.now() * 1000))
    store = _control_store(plane)
    # The audit record and the order stand or fall together: a store failure rolls it back.
    async with plane.database.transaction() as conn:
        await _record(
            plane, conn, request, session, action, target=component, detail={"instance": instance}
        )
        try:
            await write_desired(store, component, order, instance)
        except REDIS_ERRORS as exc:
            raise _unavailable(plane, exc) from exc
    _log.info(
        "runtime_order", component=component, command=command, instance=instance, user=session.user
    )
    return _json({"component": component, "command": command, "state": state, "instance": instance})


# --------------------------------------------------------------------------------- tokens


def _expiry(plane: ControlPlane, days: int) -> float:
    if not 1 <= days <= plane.settings.api_token_max_days:
        raise _bad(
            plane, "bad_expiry", f"expires_in_days is 1 to {plane.settings.api_token_max_days}"
        )
    return plane.now() + days * _DAY


async def _new_token(
    plane: ControlPlane, request: web.Request, session: Session, owner: Account
) -> web.Response:
    body = await _body(plane, request, NewToken)
    if not 1 <= len(body.name) <= 100:
        raise _bad(plane, "bad_name", "a token name has 1 to 100 characters")
    role = _role_of(plane, body.role) if body.role is not None else owner.role
    if not role_at_least(owner.role, role):
        raise web.HTTPForbidden(
            reason=f"a token cannot have more than its owner's role ({owner.role})"
        )
    expires_at = _expiry(plane, body.expires_in_days)
    async with plane.database.transaction() as conn:
        token_id, token = await plane.tokens.create(
            conn,
            user_id=owner.id,
            name=body.name,
            role=role,
            now=plane.now(),
            expires_at=expires_at,
        )
        await _record(
            plane,
            conn,
            request,
            session,
            "token.create",
            target=owner.name,
            detail={"token": token_id, "role": role, "expires_at": expires_at},
        )
    return _json({"id": token_id, "token": token, "role": role, "expires_at": expires_at}, 201)


async def my_tokens(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """The caller's own API tokens (never their secrets)."""
    del request
    async with plane.database.transaction() as conn:
        found = await plane.tokens.list(conn, session.user_id)
    return _json({"tokens": [t.public() for t in found]})


async def create_my_token(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Create a personal API token (role at most the caller's); the token is shown once."""
    if session.via == "token":
        raise web.HTTPForbidden(reason="a token cannot create tokens; log in")
    async with plane.database.transaction() as conn:
        owner = await _target(plane, conn, session.user)
    return await _new_token(plane, request, session, owner)


async def revoke_my_token(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Revoke one of the caller's tokens."""
    token_id = request.match_info["token_id"]
    async with plane.database.transaction() as conn:
        if not await plane.tokens.revoke(conn, token_id, plane.now(), session.user_id):
            raise web.HTTPNotFound(reason="no such live token")
        await _record(
            plane,
            conn,
            request,
            session,
            "token.revoke",
            target=session.user,
            detail={"token": token_id},
        )
    await plane.revoke_wds([f"token:{token_id}"])
    return _json({"ok": True})


async def all_tokens(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Every API token of every user (never their secrets)."""
    del request, session
    async with plane.database.transaction() as conn:
        found = await plane.tokens.list(conn)
    return _json({"tokens": [t.public() for t in found]})


async def create_user_token(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Create a token for a user or service account; the token is shown once."""
    async with plane.database.transaction() as conn:
        owner = await _target(plane, conn, request.match_info["name"])
    return await _new_token(plane, request, session, owner)


async def revoke_token(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Revoke any token."""
    token_id = request.match_info["token_id"]
    async with plane.database.transaction() as conn:
        if not await plane.tokens.revoke(conn, token_id, plane.now()):
            raise web.HTTPNotFound(reason="no such live token")
        await _record(
            plane,
            conn,
            request,
            session,
            "token.revoke",
            target=token_id,
        )
    await plane.revoke_wds([f"token:{token_id}"])
    return _json({"ok": True})


# --------------------------------------------------------------------------------- watchlists


async def get_watchlists(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """The caller's watchlists and the limits that apply."""
    del request
    async with plane.database.transaction() as conn:
        lists = await plane.watchlists.of(conn, session.user_id)
    return _json(
        {
            "watchlists": [w.public() for w in lists],
            "max_lists": plane.watchlists.max_lists,
            "max_symbols": plane.watchlists.max_symbols,
        }
    )


async def put_watchlist(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Create or replace the named watchlist."""
    body = await _body(plane, request, WatchlistBody)
    try:
        watchlist = plane.watchlists.clean(request.match_info["name"], body.symbols)
        async with plane.database.transaction() as conn:
            created = await plane.watchlists.put(conn, session.user_id, watchlist, plane.now())
    except WatchlistError as exc:
        raise _bad(plane, "watchlist", str(exc)) from exc
    return _json(watchlist.public(), 201 if created else 200)


async def delete_watchlist(
    plane: ControlPlane, request: web.Request, session: Session
) -> web.Response:
    """Delete the named watchlist."""
    async with plane.database.transaction() as conn:
        if not await plane.watchlists.remove(conn, session.user_id, request.match_info["name"]):
            raise web.HTTPNotFound(reason="no such watchlist")
    return _json({"ok": True})


async def get_layout(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """The caller's saved dashboard layout (``{}`` when none)."""
    del request
    async with plane.database.transaction() as conn:
        layout = await plane.watchlists.layout(conn, session.user_id)
    return _json({"layout": layout})


async def put_layout(plane: ControlPlane, request: web.Request, session: Session) -> web.Response:
    """Save the caller's dashboard layout (a JSON object of at most 8 KiB)."""
    body = await _body(plane, request, LayoutBody)
    try:
        async with plane.database.transaction() as conn:
            await plane.watchlists.save_layout(conn, session.user_id, body.layout, plane.now())
    except WatchlistError as exc:
        raise _bad(plane, "layout", str(exc)) from exc
    return _json({"ok": True})


ROUTES: Final[tuple[ApiRoute, ...]] = (
    ApiRoute("GET", "/api/admin/users", "admin", "List users.", "", list_users),
    ApiRoute(
        "POST",
        "/api/admin/users",
        "admin",
        "Create a user or service account.",
        '{"name", "role", "password"?, "kind"?: "person"|"service"}',
        create_user,
    ),
    ApiRoute(
        "PATCH",
        "/api/admin/users/{name}",
        "admin",
        "Change role, disable or enable.",
        '{"role"?, "disabled"?}',
        change_user,
    ),
    ApiRoute(
        "POST",
        "/api/admin/users/{name}/password",
        "admin",
        "Reset a password.",
        '{"password"?}',
        reset_password,
    ),
    ApiRoute(
        "GET",
        "/api/admin/users/{name}/sessions",
        "admin",
        "List a user's sessions.",
        "",
        user_sessions,
    ),
    ApiRoute(
        "DELETE",
        "/api/admin/users/{name}/sessions",
        "admin",
        "End a user's sessions.",
        "",
        end_sessions,
    ),
    ApiRoute(
        "POST",
        "/api/admin/users/{name}/tokens",
        "admin",
        "Create a token for a user or service account.",
        '{"name", "role"?, "expires_in_days"?}',
        create_user_token,
    ),
    ApiRoute("GET", "/api/admin/tokens", "admin", "List every API token.", "", all_tokens),
    ApiRoute(
        "DELETE", "/api/admin/tokens/{token_id}", "admin", "Revoke any token.", "", revoke_token
    ),
    ApiRoute("GET", "/api/admin/audit", "admin", "Read the audit log.", "", audit),
    ApiRoute(
        "GET",
        "/api/admin/runtime",
        "admin",
        "Runtime orders in force (pause, drain) and each component's commands.",
        "",
        runtime_states,
    ),
    ApiRoute(
        "POST",
        "/api/admin/runtime/{component}/{command}",
        "admin",
        "Pause/resume the processor or scanner, drain/resume the WDS.",
        '{"instance"?: "*"|heartbeat instance}',
        runtime_command,
    ),
    ApiRoute("GET", "/api/tokens", "viewer", "List your API tokens.", "", my_tokens),
    ApiRoute(
        "POST",
        "/api/tokens",
        "viewer",
        "Create a personal API token.",
        '{"name", "role"?, "expires_in_days"?}',
        create_my_token,
    ),
    ApiRoute(
        "DELETE",
        "/api/tokens/{token_id}",
        "viewer",
        "Revoke one of your tokens.",
        "",
        revoke_my_token,
    ),
    ApiRoute("GET", "/api/watchlists", "viewer", "Your watchlists.", "", get_watchlists),
    ApiRoute(
        "PUT",
        "/api/watchlists/{name}",
        "viewer",
        "Create or replace a watchlist.",
        '{"symbols": [...]}',
        put_watchlist,
    ),
    ApiRoute(
        "DELETE", "/api/watchlists/{name}", "viewer", "Delete a watchlist.", "", delete_watchlist
    ),
    ApiRoute("GET", "/api/layout", "viewer", "Your saved dashboard layout.", "", get_layout),
    ApiRoute(
        "PUT",
        "/api/layout",
        "viewer",
        "Save your dashboard layout.",
        '{"layout": {...}}',
        put_layout,
    ),
)
"""Every management route; the reference ``docs/reference/scp-api.md`` is rendered from it."""


def _bind(plane: ControlPlane, route: ApiRoute) -> Callable[[web.Request], Awaitable[web.Response]]:
    @functools.wraps(route.handler)
    async def serve(request: web.Request) -> web.Response:
        session = await plane.require(request, role=route.role)
        return await route.handler(plane, request, session)

    return serve


def register_management_routes(plane: ControlPlane, router: web.UrlDispatcher) -> None:
    """Add every route of :data:`ROUTES` to ``router``."""
    for route in ROUTES:
        router.add_route(route.method, route.path, _bind(plane, route))
