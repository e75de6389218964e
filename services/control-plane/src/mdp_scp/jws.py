"""Compact JWS verification for OpenID Connect ID tokens (HS256 and RS256), no dependencies.

Only what an ID token needs: the two algorithms OIDC providers actually use, chosen by the
relying party (never trusting ``alg: none`` or an algorithm the caller did not allow).
RS256 verification re-encodes the expected PKCS#1 v1.5 block and compares the whole block,
rather than parsing the decrypted signature, which is the construction that avoids the
classic signature-forgery bugs of lenient parsers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["JwsError", "RsaPublicKey", "decode_unverified", "rsa_key_from_jwk", "verify_jws"]

# DER prefix of DigestInfo for SHA-256 (RFC 8017 section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_MIN_RSA_BITS = 2048


class JwsError(ValueError):
    """A token that is malformed, uses a refused algorithm or fails its signature."""


@dataclass(frozen=True, slots=True)
class RsaPublicKey:
    """An RSA public key from a JWKS entry."""

    n: int
    e: int
    kid: str | None = None


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwsError(f"bad base64url: {exc}") from exc


def _b64_int(text: object) -> int:
    if not isinstance(text, str) or not text:
        raise JwsError("an RSA key parameter must be a base64url string")
    return int.from_bytes(_b64decode(text), "big")


def rsa_key_from_jwk(jwk: Mapping[str, Any]) -> RsaPublicKey:
    """Build a key from a JWK (``kty: RSA``, ``n``, ``e``).

    Raises:
        JwsError: if the JWK is not an RSA signing key of at least 2048 bits.
    """
    if jwk.get("kty") != "RSA":
        raise JwsError("not an RSA key")
    if jwk.get("use", "sig") != "sig":
        raise JwsError("not a signing key")
    key = RsaPublicKey(n=_b64_int(jwk.get("n")), e=_b64_int(jwk.get("e")), kid=jwk.get("kid"))
    if key.n.bit_length() < _MIN_RSA_BITS or key.e < 3 or key.e % 2 == 0:
        raise JwsError("RSA key too small or with a bad exponent")
    return key


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split a compact JWS into header, claims, signing input and signature (NOT verified).

    Raises:
        JwsError: if it is not three base64url parts with JSON object header and claims.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise JwsError("a JWS has three dot-separated parts")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, RecursionError) as exc:  # not UTF-8, or an int past 4,300 digits too
        raise JwsError(f"JWS header or payload is not JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwsError("JWS header and payload must be JSON objects")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return header, claims, signing_input, _b64decode(parts[2])


def _rsa_verify(key: RsaPublicKey, message: bytes, signature: bytes) -> bool:
    size = (key.n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= key.n:
        return False
    recovered = pow(value, key.e, key.n).to_bytes(size, "big")
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    padding = b"\xff" * (size - len(digest_info) - 3)
    expected = b"\x00\x01" + padding + b"\x00" + digest_info
    return hmac.compare_digest(recovered, expected)


def verify_jws(
    token: str,
    *,
    hmac_secret: bytes | None,
    rsa_keys: Sequence[RsaPublicKey],
) -> dict[str, Any]:
    """Verify the signature of a compact JWS and return its claims.

    Args:
        token: the compact JWS.
        hmac_secret: the client secret; None refuses HS256.
        rsa_keys: the provider's RSA keys (from its JWKS); empty refuses RS256.

    Raises:
        JwsError: on a malformed token, an algorithm that is not allowed, or a bad signature.
    """
    header, claims, signing_input, signature = decode_unverified(token)
    alg = header.get("alg")
    if alg == "HS256" and hmac_secret:
        expected = hmac.new(hmac_secret, signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise JwsError("HS256 signature does not match")
        return claims
    if alg == "RS256" and rsa_keys:
        kid = header.get("kid")
        candidates = [k for k in rsa_keys if kid is None or k.kid in (kid, None)]
        if any(_rsa_verify(k, signing_input, signature) for k in candidates):
            return claims
        raise JwsError("RS256 signature does not match any provider key")
    raise JwsError(f"signature algorithm {alg!r} is not allowed")
