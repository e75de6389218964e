"""OpenID Connect login (authorization code flow with PKCE) for deployments.

The flow, and what each piece defends against:

* **Discovery** (``/.well-known/openid-configuration``): endpoints come from the provider, and
  the document's ``issuer`` must equal the configured one (mix-up defence).
* **state** binds the callback to the browser that started the login (login CSRF). The
  pending login (state, nonce, PKCE verifier, start time) travels in a signed, HttpOnly
  cookie, not in a replica's memory: the callback may reach another replica (two behind one
  Service, no sticky sessions), and a flood of started logins evicts nobody's. The cookie is
  dropped when the login completes, and the provider takes each code once.
* **nonce** binds the ID token to this login (token replay).
* **PKCE (S256)** binds the code to this client instance (code interception).
* **ID token validation**: signature (HS256 with the client secret or RS256 with the provider's
  JWKS), ``iss``, ``aud`` (and ``azp`` when several audiences), ``exp``, ``iat``, ``nonce``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from mdp_scp.jws import JwsError, RsaPublicKey, rsa_key_from_jwk, verify_jws
from mdp_scp.sessions import same_secret

__all__ = ["OidcClient", "OidcError", "OidcIdentity", "PendingLogin"]

_CLOCK_SKEW = 60.0
_PENDING_TTL = 600.0
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class OidcError(Exception):
    """The provider or its answer cannot be trusted; the login is refused."""


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login that went to the provider and has not come back yet."""

    state: str
    nonce: str
    code_verifier: str
    created_at: float

    def encode(self) -> str:
        """The cookie text (the caller signs it): URL-safe tokens and the start, ``~`` apart."""
        return f"{self.state}~{self.nonce}~{self.code_verifier}~{self.created_at:.3f}"

    @classmethod
    def decode(cls, text: str) -> PendingLogin | None:
        """The login :meth:`encode` wrote, or None for anything else."""
        parts = text.split("~")
        if len(parts) != 4 or not all(parts):
            return None
        try:
            created_at = float(parts[3])
        except ValueError:
            return None
        return cls(parts[0], parts[1], parts[2], created_at)


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who the provider says logged in.

    Attributes:
        subject: the provider's stable ``sub``.
        email: the ``email`` claim, when present.
        name: what the SCP calls the user (email when present, else the subject).
    """

    subject: str
    email: str | None

    @property
    def name(self) -> str:
        """The user name the session carries."""
        return self.email or self.subject


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """A relying party of one OpenID provider.

    Args:
        issuer: the provider's issuer URL (exactly as it appears in its ID tokens).
        client_id: this client's id.
        client_secret: the client secret (token endpoint auth; HS256 ID tokens).
        redirect_uri: the SCP callback URL registered with the provider.
    """

    def __init__(
        self, issuer: str, client_id: str, client_secret: str | None, redirect_uri: str
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._redirect_uri = redirect_uri
        self._metadata: dict[str, Any] | None = None
        self._keys: list[RsaPublicKey] = []
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Release the HTTP client."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._http

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client().get(url) as response:
                if response.status != 200:
                    raise OidcError(f"{url} answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OidcError(f"cannot fetch {url}: {exc}") from exc
        if not isinstance(body, dict):
            raise OidcError(f"{url} did not return a JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once and checked).

        Raises:
            OidcError: if it cannot be fetched, names another issuer or lacks an endpoint.
        """
        if self._metadata is None:
            document = await self._get_json(f"{self._issuer}/.well-known/openid-configuration")
            if str(document.get("issuer", "")).rstrip("/") != self._issuer:
                raise OidcError("the discovery document names a different issuer")
            for needed in ("authorization_endpoint", "token_endpoint"):
                if not isinstance(document.get(needed), str):
                    raise OidcError(f"the discovery document has no {needed}")
            self._metadata = document
        return self._metadata

    async def _load_keys(self) -> list[RsaPublicKey]:
        uri = (await self.metadata()).get("jwks_uri")
        if not isinstance(uri, str):
            return []
        document = await self._get_json(uri)
        keys: list[RsaPublicKey] = []
        for jwk in document.get("keys", []):
            if isinstance(jwk, dict):
                try:
                    keys.append(rsa_key_from_jwk(jwk))
                except JwsError:
                    continue  # other key types (EC, enc) are not ours to use
        self._keys = keys
        return keys

    async def begin(self, now: float) -> tuple[str, PendingLogin]:
        """Start a login: the provider URL to redirect to, and the login for the cookie."""
        metadata = await self.metadata()
        pending = PendingLogin(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            created_at=now,
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self._redirect_uri,
                "scope": "openid email profile",
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": _pkce_challenge(pending.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(metadata["authorization_endpoint"])
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{query}", pending

    async def complete(
        self, *, state: str, pending: PendingLogin | None, code: str, now: float
    ) -> OidcIdentity:
        """Finish a login from the callback's ``state`` and ``code``.

        Raises:
            OidcError: on a foreign or expired login state, a failed code exchange or an
                ID token that does not validate.
        """
        if pending is None or not same_secret(state, pending.state):
            raise OidcError("the login state does not belong to this browser")
        if not pending.created_at <= now < pending.created_at + _PENDING_TTL:
            raise OidcError("the login took too long; start it again")
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
            "code_verifier": pending.code_verifier,
            "client_id": self._client_id,
        }
        headers = {"Accept": "application/json"}
        if self._secret:
            # client_secret_basic (RFC 6749 section 2.3.1): form-encoded id and secret.
            pair = f"{quote(self._client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            async with self._client().post(
                str(metadata["token_endpoint"]), data=form, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OidcError(f"the token request failed: {exc}") from exc
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            raise OidcError(f"the token endpoint answered HTTP {status} without an ID token")
        claims = await self._verified_claims(body["id_token"])
        return self._validate(claims, pending.nonce, now)

    async def _verified_claims(self, id_token: str) -> dict[str, Any]:
        secret = self._secret.encode() if self._secret else None
        keys = self._keys or await self._load_keys()
        try:
            return verify_jws(id_token, hmac_secret=secret, rsa_keys=keys)
        except JwsError:
            if not keys and secret is None:
                raise OidcError("no key can verify the ID token") from None
        # The provider may have rotated its keys since we fetched them: fetch once more.
        try:
            return verify_jws(id_token, hmac_secret=secret, rsa_keys=await self._load_keys())
        except JwsError as exc:
            raise OidcError(f"the ID token signature is invalid: {exc}") from exc

    def _validate(self, claims: Mapping[str, Any], nonce: str, now: float) -> OidcIdentity:
        if str(claims.get("iss", "")).rstrip("/") != self._issuer:
            raise OidcError("the ID token comes from another issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self._client_id not in audiences:
            raise OidcError("the ID token is not meant for this client")
        if len(audiences) > 1 and claims.get("azp") != self._client_id:
            raise OidcError("the ID token's authorized party is another client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + _CLOCK_SKEW <= now:
            raise OidcError("the ID token has expired")
        if not isinstance(iat, int | float) or iat - _CLOCK_SKEW > now:
            raise OidcError("the ID token was issued in the future")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not same_secret(token_nonce, nonce):
            raise OidcError("the ID token nonce does not match this login")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise OidcError("the ID token has no subject")
        email = claims.get("email")
        # Only an email the provider says it verified names the account: one that omits the
        # claim may let its users set any address (another user's, an admin's), so the login
        # would take over the account of that name. Without it the subject names the account.
        claimed = claims.get("email_verified")
        verified = claimed is True or claimed == "true"  # not 1 (1 == True)
        return OidcIdentity(
            subject=subject, email=email if isinstance(email, str) and verified else None
        )
