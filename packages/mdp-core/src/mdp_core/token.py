"""Signed, short-lived access tokens for the widget data service (WDS).

The control plane issues a token to a logged-in browser; the WDS verifies it on the websocket.
Both share one secret (``MDP_WDS_TOKEN_SECRET``), so the WDS needs no session store and no call
back to the control plane: everything it must know (who, which feeds, until when) travels in the
token, protected by an HMAC-SHA256 signature.

Format (stable; the dashboard and other languages may parse the payload part)::

    base64url(payload JSON) "." base64url(HMAC-SHA256(secret, base64url(payload JSON)))

Both parts use the URL-safe alphabet without ``=`` padding. The payload is
``{"v": 1, "sub": "<user>", "feeds": ["<feed pattern>", ...], "iat": <unix s>, "exp": <unix s>}``,
plus ``"sid": "<session id>"`` when the token belongs to a control-plane login session: the WDS
then refuses it once that session has ended (see ``KEY_WDS_REVOKED``).
The signature covers the *encoded* payload bytes, so a verifier never re-serialises JSON and the
check does not depend on key order or whitespace. Signatures are compared in constant time.

Time is passed in (``now``, Unix seconds) rather than read here: the caller owns the clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

__all__ = [
    "MIN_SECRET_BYTES",
    "TOKEN_VERSION",
    "TokenBadSignature",
    "TokenClaims",
    "TokenError",
    "TokenExpired",
    "TokenMalformed",
    "issue_token",
    "secret_problem",
    "verify_token",
]

TOKEN_VERSION: Final = 1
MIN_SECRET_BYTES: Final = 16
"""The shortest ``MDP_WDS_TOKEN_SECRET`` the services start with: a short HMAC key is guessed
offline from one token."""


def secret_problem(secret: str) -> str | None:
    """Why the services refuse ``secret`` as ``MDP_WDS_TOKEN_SECRET`` at start, or None."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"MDP_WDS_TOKEN_SECRET needs at least {MIN_SECRET_BYTES} bytes (use 32 random ones)"
    return None


_MAX_TOKEN_LENGTH: Final = 8_192
"""Longer strings are refused before any decoding: a token lists a handful of feed patterns."""


class TokenError(Exception):
    """A token that cannot be accepted; subclasses say why (``kind`` is metric-friendly)."""

    kind: str = "token_error"


class TokenMalformed(TokenError):
    """Not a token of this format: bad structure, encoding, JSON, version or field types."""

    kind = "malformed"


class TokenBadSignature(TokenError):
    """Well-formed, but not signed with our secret (forged, tampered or another key)."""

    kind = "bad_signature"


class TokenExpired(TokenError):
    """Correctly signed, but its ``exp`` has passed."""

    kind = "expired"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token grants.

    Attributes:
        subject: The user (or service) the token was issued to.
        feeds: Feed patterns the holder may read (``quote:*``, ``scanner:top_gainers``, ``*``).
            The WDS still only serves catalogue feeds whatever a token claims.
        issued_at: Unix seconds of issue.
        expires_at: Unix seconds after which the token is refused.
        session_id: The control-plane session the token was issued under, if any.
    """

    subject: str
    feeds: tuple[str, ...]
    issued_at: int
    expires_at: int
    session_id: str | None = None


class _Payload(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True):
    v: int
    sub: str
    feeds: list[str]
    iat: int
    exp: int
    sid: str | None = msgspec.field(default=None)


_B64URL: Final = re.compile(rb"[A-Za-z0-9_-]+")
_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(_Payload)


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        msg = "the token secret must not be empty"
        raise ValueError(msg)
    return key


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    """Strict unpadded base64url: only the canonical encoding of some bytes is accepted.

    Raises:
        ValueError: on characters outside the alphabet or a non-canonical encoding, so a
            token has exactly one spelling and a changed character never verifies.
    """
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    if _b64encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def _sign(key: bytes, encoded_payload: bytes) -> bytes:
    return hmac.new(key, encoded_payload, hashlib.sha256).digest()


def issue_token(
    secret: str | bytes,
    subject: str,
    feeds: Iterable[str],
    ttl_seconds: float,
    now: float,
    *,
    session_id: str | None = None,
) -> str:
    """Sign a token for ``subject`` granting ``feeds`` for ``ttl_seconds`` from ``now``.

    Args:
        secret: The shared secret (``MDP_WDS_TOKEN_SECRET``, revealed).
        subject: Who the token is for; shown in WDS logs.
        feeds: Feed patterns the holder may read.
        ttl_seconds: Lifetime; keep it short (minutes) and let clients refresh.
        now: Current Unix time in seconds, from the caller's clock.
        session_id: The login session the token belongs to (``sid``), so it can be revoked.

    Raises:
        ValueError: on an empty secret, an empty subject or a non-positive lifetime.
    """
    key = _key(secret)
    if not subject:
        msg = "a token needs a subject"
        raise ValueError(msg)
    if not ttl_seconds > 0 or not math.isfinite(ttl_seconds):
        msg = f"ttl_seconds must be a positive number; it was {ttl_seconds!r}"
        raise ValueError(msg)
    issued = math.floor(now)
    payload = _Payload(
        v=TOKEN_VERSION,
        sub=subject,
        feeds=list(feeds),
        iat=issued,
        exp=math.floor(now + ttl_seconds),
        sid=session_id,
    )
    encoded = _b64encode(_ENCODER.encode(payload))
    return (encoded + b"." + _b64encode(_sign(key, encoded))).decode("ascii")


def verify_token(secret: str | bytes, token: str, now: float) -> TokenClaims:
    """Check a token's signature and expiry and return its claims.

    The signature is checked before the payload is parsed, so an attacker cannot make the
    verifier parse arbitrary JSON, and the comparison is constant-time.

    Args:
        secret: The shared secret.
        token: The token string as received.
        now: Current Unix time in seconds; the token is expired when ``now >= exp``.

    Raises:
        TokenMalformed: when the string is not a token of this format or version.
        TokenBadSignature: when the signature does not match.
        TokenExpired: when the token is genuine but expired.
        ValueError: on an empty secret (a configuration error, not a client error).
    """
    key = _key(secret)
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise TokenMalformed("a token is a non-empty string of at most 8192 characters")
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise TokenMalformed("a token is ASCII only") from None
    encoded, dot, signature_text = raw.partition(b".")
    if not dot or not encoded or not signature_text or b"." in signature_text:
        raise TokenMalformed("a token is two base64url parts joined by '.'")
    if not _B64URL.fullmatch(encoded):
        raise TokenMalformed("the payload part is not base64url")
    try:
        signature = _b64decode(signature_text)
    except (binascii.Error, ValueError):
        raise TokenMalformed("the signature part is not base64url") from None
    if not hmac.compare_digest(signature, _sign(key, encoded)):
        raise TokenBadSignature("the token signature does not match")
    try:
        payload = _DECODER.decode(_b64decode(encoded))
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise TokenMalformed(f"the payload is not a valid token payload ({exc})") from None
    if payload.v != TOKEN_VERSION:
        raise TokenMalformed(f"unsupported token version {payload.v}")
    if now >= payload.exp:
        raise TokenExpired(f"the token expired at {payload.exp}")
    return TokenClaims(
        subject=payload.sub,
        feeds=tuple(payload.feeds),
        issued_at=payload.iat,
        expires_at=payload.exp,
        session_id=payload.sid,
    )
