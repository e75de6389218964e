"""Login sessions: a signed, opaque id in the cookie; everything else on the server.

The cookie holds ``<session id>.<HMAC-SHA256 of the id>``, so a forged or altered cookie is
rejected before any lookup, and the id itself carries no user data. The server keeps the user,
role, CSRF token and expiry; expiry is enforced here (not by the browser), and logout deletes
the session, so a copied cookie stops working at once. Sessions live in process memory: a
restart logs everyone out, which is acceptable for a control plane.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from mdp_scp.users import Role

__all__ = ["Session", "SessionStore", "Signer"]


class Signer:
    """HMAC-SHA256 signatures of short strings (cookie values, CSRF tokens)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            msg = "a signing key needs at least 16 bytes"
            raise ValueError(msg)
        self._key = key

    def signature(self, value: str, purpose: str) -> str:
        """The base64url signature of ``value`` for ``purpose`` (purposes never collide)."""
        mac = hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def sign(self, value: str, purpose: str) -> str:
        """``value.signature``."""
        return f"{value}.{self.signature(value, purpose)}"

    def unsign(self, signed: str, purpose: str) -> str | None:
        """The value if the signature is right, else None (constant-time comparison)."""
        value, dot, mac = signed.rpartition(".")
        if not dot or not value:
            return None
        if not hmac.compare_digest(mac.encode(), self.signature(value, purpose).encode()):
            return None
        return value


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in browser.

    Attributes:
        session_id: the random id (only its signed form leaves the server).
        user: the login name (or OIDC email/subject).
        role: the role granted at login.
        csrf_token: the token every state-changing request must echo.
        expires_at: Unix seconds after which the session is void.
    """

    session_id: str
    user: str
    role: Role
    csrf_token: str
    expires_at: float

    @property
    def is_admin(self) -> bool:
        """Whether the session may use runtime controls."""
        return self.role == "admin"


_PURPOSE = "session"


class SessionStore:
    """Creates, resolves and ends sessions; the time is passed in by the caller."""

    def __init__(self, signer: Signer, ttl_seconds: float) -> None:
        self._signer = signer
        self._ttl = ttl_seconds
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, role: Role, now: float) -> tuple[Session, str]:
        """Start a session; returns it and the signed cookie value."""
        self._purge(now)
        session = Session(
            session_id=secrets.token_urlsafe(32),
            user=user,
            role=role,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + self._ttl,
        )
        self._sessions[session.session_id] = session
        return session, self._signer.sign(session.session_id, _PURPOSE)

    def resolve(self, cookie: str | None, now: float) -> Session | None:
        """The live session named by a cookie value, or None (missing, forged or expired)."""
        if not cookie:
            return None
        session_id = self._signer.unsign(cookie, _PURPOSE)
        if session_id is None:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._sessions[session_id]
            return None
        return session

    def end(self, session: Session) -> None:
        """Log out: the session id is forgotten, so its cookie is worthless from now on."""
        self._sessions.pop(session.session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _purge(self, now: float) -> None:
        expired = [sid for sid, s in self._sessions.items() if s.expires_at <= now]
        for sid in expired:
            del self._sessions[sid]
