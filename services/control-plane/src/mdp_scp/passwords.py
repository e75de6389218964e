"""Password hashing with scrypt: a memory-hard function from the standard library.

A stored hash carries its own parameters and salt (``scrypt$n$r$p$salt$hash``, base64url
parts), so the work factor can be raised later without invalidating existing users: old hashes
keep verifying with the parameters they were made with. Verification compares digests in
constant time, and a malformed stored hash simply never verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PARAMETERS",
    "MalformedPasswordHash",
    "ScryptParameters",
    "generate_password",
    "hash_password",
    "parse_hash",
    "verify_password",
]

_SCHEME = "scrypt"
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAX_N = 1 << 20  # refuse absurd stored parameters: they would be a memory bomb


class MalformedPasswordHash(ValueError):
    """A stored password hash is not in the ``scrypt$n$r$p$salt$hash`` format."""


@dataclass(frozen=True, slots=True)
class ScryptParameters:
    """scrypt cost parameters.

    Attributes:
        n: CPU/memory cost, a power of two (2**14 takes ~50 ms and 16 MiB).
        r: block size.
        p: parallelisation.
    """

    n: int = 1 << 14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.n > _MAX_N:
            msg = f"scrypt n must be a power of two between 2 and {_MAX_N}; it was {self.n}"
            raise ValueError(msg)
        if not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            msg = f"scrypt r must be 1..32 and p 1..16; they were {self.r} and {self.p}"
            raise ValueError(msg)


DEFAULT_PARAMETERS = ScryptParameters()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, params: ScryptParameters, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=256 * params.n * params.r + (1 << 20),
        dklen=length,
    )


def hash_password(password: str, params: ScryptParameters = DEFAULT_PARAMETERS) -> str:
    """Hash ``password`` with a fresh random salt.

    Returns:
        ``scrypt$n$r$p$salt$hash`` with base64url salt and hash.

    Raises:
        ValueError: if the password is empty (an empty password is never a valid credential).
    """
    if not password:
        msg = "a password must not be empty"
        raise ValueError(msg)
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt, params, _KEY_BYTES)
    return f"{_SCHEME}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def parse_hash(stored: str) -> tuple[ScryptParameters, bytes, bytes]:
    """Split a stored hash into its parameters, salt and digest.

    Raises:
        MalformedPasswordHash: if the text is not a hash made by :func:`hash_password`.
    """
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        msg = "a password hash must look like scrypt$n$r$p$salt$hash"
        raise MalformedPasswordHash(msg)
    try:
        params = ScryptParameters(int(parts[1]), int(parts[2]), int(parts[3]))
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise MalformedPasswordHash(f"bad password hash: {exc}") from exc
    if len(salt) < 8 or len(digest) < 16:
        msg = "a password hash needs at least 8 bytes of salt and 16 of digest"
        raise MalformedPasswordHash(msg)
    return params, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False (never an exception) for bad hashes."""
    try:
        params, salt, digest = parse_hash(stored)
    except MalformedPasswordHash:
        return False
    candidate = _derive(password, salt, params, len(digest))
    return hmac.compare_digest(candidate, digest)


def generate_password(length: int = 20) -> str:
    """A random password for a first administrator (URL-safe characters)."""
    return secrets.token_urlsafe(length)[:length]
