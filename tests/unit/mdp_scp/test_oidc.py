"""OpenID Connect login against a tiny fake provider on 127.0.0.1 started by the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mdp_core.clock import ManualClock
from mdp_core.settings import Secret
from mdp_scp import ControlPlane
from mdp_scp.app import PLANE_KEY
from mdp_scp.jws import (
    JwsError,
    RsaPublicKey,
    decode_unverified,
    rsa_key_from_jwk,
    verify_jws,
)
from mdp_scp.oidc import PendingLogin

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[ControlPlane], Awaitable[Client]]

# A throwaway 2048-bit RSA key made for this test only (openssl genrsa); never used elsewhere.
RSA_N = int(
    "a987be318d4c4cb90f9313b85c48309d9286b2302764888f33b4fecf5be622ff5d526b54150d703e2b5a693444afd7878455d4e70a2a52b8487b210411e5dc6884ea7ed31d50d65203894758002541cdc8127972fe0146e2f491cf9fa1ae728361eaeccaac6efaf1129ea4d294d8c38498621f24cc4f7e6662d9e6f7c329edbfdd66e6cd849d592fb8d864af375fef02b7fef45acaa7c595bfe520ba1cbd27d5acad5e69c5cdeaf78fff36058f6fcabc912829959436df4693e68224a5d209ec057402cfa244460e6feef777c473eda13ffa1845ee4f6767657772ff0ff970ce16f12844fc0ccdb147093e7085486c5c05c8a1c968f9790bb94aaf828cf51fed",
    16,
)
RSA_D = int(
    "9f20f779f3b386e0bea9c37cedc2254002e5c4244715aac92033e86a234ce5d4e578139e9d143c235ef64281f96744dbc36ffda3d07ae1a27106827b1b81b35db845943dfdea7f0204a7bafbf34705796f2f4828941c06b9c9ef83ffc6f7c42d669fe91c64b6d77da9889815c1f9a5acb48c85c738aff5698da81390c4f47a607101f3f2d70dc93992e809229632fab2049e3713616e95e47bde4d8c59472216a7aa5c1853ba0dcf6852f2ea612b83ce8dccf4414bc0a54f62d34cb80284a78217aace2f0c10d4f4261b8c2fffae7091feb4c4d26de398b45ecc186b77ea71c620492c23d5b6d7d06d5f18272b2c00f5803b2745ef233f520b2607d2ab31f89",
    16,
)
RSA_E = 65537
CLIENT_ID = "mdp-scp-test"
CLIENT_SECRET = "oidc-client-secret-for-tests"
_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_int(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rs256(signing_input: bytes, d: int = RSA_D) -> bytes:
    size = (RSA_N.bit_length() + 7) // 8
    info = _DIGEST_INFO + hashlib.sha256(signing_input).digest()
    block = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
    return pow(int.from_bytes(block, "big"), d, RSA_N).to_bytes(size, "big")


def make_jws(claims: dict[str, Any], alg: str, kid: str = "k1", wrong_key: bool = False) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if alg == "HS256":
        key = b"not-the-secret" if wrong_key else CLIENT_SECRET.encode()
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    elif alg == "RS256":
        signature = rs256(signing_input.encode(), d=RSA_D - 2 if wrong_key else RSA_D)
    else:
        signature = b""
    return f"{signing_input}.{b64(signature)}"


@dataclass
class FakeProvider:
    """Discovery, JWKS and a token endpoint that checks client auth, code and PKCE verifier."""

    alg: str = "RS256"
    overrides: dict[str, Any] = field(default_factory=dict)
    wrong_key: bool = False
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: int = 0
    now: float = 0.0
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        del request
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        del request
        key = {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": "k1",
            "n": b64_int(RSA_N),
            "e": b64_int(RSA_E),
        }
        return web.json_response({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}, key]})

    def authorize(self, location: str) -> tuple[str, str]:
        """What the provider does when the browser arrives: returns (code, state)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        assert "openid" in query["scope"].split()
        code = secrets.token_urlsafe(8)
        self.codes[code] = query
        return code, query["state"]

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        query = self.codes.pop(str(form.get("code")), None)
        if query is None or form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        if b64(hashlib.sha256(verifier.encode()).digest()) != query["code_challenge"]:
            return web.json_response({"error": "invalid_grant", "why": "pkce"}, status=400)
        if form.get("redirect_uri") != query["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "sub": "user-42",
            "email": "trader@example.test",
            "email_verified": True,
            "iat": int(self.now),
            "exp": int(self.now) + 300,
            "nonce": query["nonce"],
        }
        claims.update(self.overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return web.json_response({"id_token": make_jws(claims, self.alg, wrong_key=self.wrong_key)})


@pytest.fixture
async def provider(clock: ManualClock) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(now=clock.now_ns() / 1e9)
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@pytest.fixture
async def oidc_client(
    provider: FakeProvider,
    plane_factory: Callable[..., ControlPlane],
    client_factory: ClientFactory,
) -> Client:
    plane = plane_factory(
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=Secret(CLIENT_SECRET),
        oidc_admin_subjects=("trader@example.test",),
        public_url="http://127.0.0.1:8088",
    )
    return await client_factory(plane)


async def start_login(client: Client, provider: FakeProvider) -> tuple[str, str]:
    response = await client.get("/login/oidc", allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(f"{provider.url}/authorize?")
    return provider.authorize(location)


async def finish(client: Client, code: str, state: str) -> int:
    response = await client.get(
        "/login/oidc/callback", params={"code": code, "state": state}, allow_redirects=False
    )
    return response.status


@pytest.mark.parametrize("alg", ["RS256", "HS256"])
async def test_a_valid_login_starts_a_session_with_the_mapped_role(
    oidc_client: Client, provider: FakeProvider, alg: str
) -> None:
    provider.alg = alg
    assert "single sign-on" in await (await oidc_client.get("/login")).text()
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) == 303
    me = await (await oidc_client.get("/api/me")).json()
    assert me == {"user": "trader@example.test", "role": "admin", "csrf_token": me["csrf_token"]}


async def test_other_users_are_viewers(oidc_client: Client, provider: FakeProvider) -> None:
    provider.overrides = {"email": "someone@example.test"}
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) == 303
    assert (await (await oidc_client.get("/api/me")).json())["role"] == "viewer"


@pytest.mark.parametrize("verified", [False, None, "yes", 1])  # None: the claim is left out
async def test_an_unverified_email_is_not_used_as_the_name(
    oidc_client: Client, provider: FakeProvider, verified: object
) -> None:
    # A provider that leaves email_verified out may let its users set any address: taken as
    # verified, it logged them into the account of that name (an admin's, say).
    provider.overrides = {"email_verified": verified}
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) == 303
    me = await (await oidc_client.get("/api/me")).json()
    assert me["user"] == "user-42"
    assert me["role"] == "viewer"


@pytest.mark.parametrize(
    ("overrides", "alg", "wrong_key"),
    [
        ({"iss": "http://127.0.0.1:1/evil"}, "RS256", False),
        ({"aud": "another-client"}, "RS256", False),
        ({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}, "RS256", False),
        ({"exp": 1}, "RS256", False),
        ({"iat": 4_000_000_000}, "RS256", False),
        ({"nonce": "replayed-nonce"}, "RS256", False),
        ({"nonce": None}, "RS256", False),
        ({"sub": None}, "RS256", False),
        ({}, "RS256", True),
        ({}, "HS256", True),
        ({}, "none", False),
    ],
    ids=[
        "issuer",
        "audience",
        "azp",
        "expired",
        "future-iat",
        "nonce",
        "no-nonce",
        "no-subject",
        "rs256-bad-signature",
        "hs256-bad-signature",
        "alg-none",
    ],
)
async def test_invalid_id_tokens_are_refused(
    oidc_client: Client,
    provider: FakeProvider,
    overrides: dict[str, Any],
    alg: str,
    wrong_key: bool,
) -> None:
    provider.overrides, provider.alg, provider.wrong_key = overrides, alg, wrong_key
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) == 401
    assert (await oidc_client.get("/api/me")).status == 401


async def test_the_state_must_belong_to_this_browser_and_is_single_use(
    oidc_client: Client,
    provider: FakeProvider,
    plane_factory: Callable[..., ControlPlane],
    client_factory: ClientFactory,
) -> None:
    code, state = await start_login(oidc_client, provider)
    # The same callback URL opened by a browser without the state cookie (login CSRF) fails.
    oidc_client.session.cookie_jar.clear()
    assert await finish(oidc_client, code, state) == 401
    assert provider.token_requests == 0
    # A fresh login completes once; replaying its callback is refused.
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) == 303
    code2, _ = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code2, state) == 401


async def test_without_oidc_configured_the_routes_are_absent(
    plane_factory: Callable[..., ControlPlane], client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory())
    assert (await client.get("/login/oidc", allow_redirects=False)).status == 404
    assert "single sign-on" not in await (await client.get("/login")).text()


def test_small_rsa_keys_and_foreign_key_types_are_refused() -> None:
    with pytest.raises(JwsError):
        rsa_key_from_jwk({"kty": "RSA", "n": b64_int(3233), "e": b64_int(17)})
    with pytest.raises(JwsError):
        rsa_key_from_jwk({"kty": "EC"})
    with pytest.raises(JwsError):
        rsa_key_from_jwk({"kty": "RSA", "use": "enc", "n": b64_int(RSA_N), "e": b64_int(RSA_E)})


def test_jws_verification_accepts_only_allowed_algorithms() -> None:
    key = RsaPublicKey(RSA_N, RSA_E, "k1")
    token = make_jws({"sub": "x"}, "RS256")
    assert verify_jws(token, hmac_secret=None, rsa_keys=[key]) == {"sub": "x"}
    with pytest.raises(JwsError):
        verify_jws(token, hmac_secret=CLIENT_SECRET.encode(), rsa_keys=[])
    hs = make_jws({"sub": "x"}, "HS256")
    with pytest.raises(JwsError):
        verify_jws(hs, hmac_secret=None, rsa_keys=[key])
    tampered = token.split(".")
    tampered[1] = b64(json.dumps({"sub": "admin"}).encode())
    with pytest.raises(JwsError):
        verify_jws(".".join(tampered), hmac_secret=None, rsa_keys=[key])
    for bad in ("a.b", "a.b.c.d", "!!.!!.!!"):
        with pytest.raises(JwsError):
            verify_jws(bad, hmac_secret=None, rsa_keys=[key])


def test_a_nested_jws_header_is_a_jws_error() -> None:
    nested = base64.urlsafe_b64encode(b"[" * 5_000).rstrip(b"=").decode()
    with pytest.raises(JwsError, match="not JSON"):
        decode_unverified(f"{nested}.{nested}.c2ln")


@pytest.mark.parametrize("part", [b'{"exp":' + b"9" * 5_000 + b"}", b'{"sub":"\xff"}'])
def test_a_huge_int_or_bytes_not_utf8_in_a_jws_are_a_jws_error(part: bytes) -> None:
    encoded = base64.urlsafe_b64encode(part).rstrip(b"=").decode()
    header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').rstrip(b"=").decode()
    with pytest.raises(JwsError, match="not JSON"):
        decode_unverified(f"{header}.{encoded}.c2ln")


def test_without_a_public_url_the_redirect_is_the_servers_own(
    plane_factory: Callable[..., ControlPlane],
) -> None:
    # Empty means http://host:port, as documented; reading it before the port was known
    # raised AttributeError and the SCP did not start.
    plane = plane_factory(
        oidc_issuer="http://127.0.0.1:9", oidc_client_id=CLIENT_ID, host="127.0.0.1", port=8123
    )
    assert plane.oidc is not None
    assert plane.oidc._redirect_uri == "http://127.0.0.1:8123/login/oidc/callback"


async def test_a_verified_email_may_come_as_the_string_true(
    oidc_client: Client, provider: FakeProvider
) -> None:
    provider.overrides = {"email_verified": "true"}
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) == 303
    assert (await (await oidc_client.get("/api/me")).json())["user"] == "trader@example.test"


async def test_a_service_account_is_never_an_oidc_login(
    oidc_client: Client, provider: FakeProvider
) -> None:
    plane = oidc_client.app[PLANE_KEY]
    async with plane.database.transaction() as conn:
        await plane.accounts.create(
            conn, "trader@example.test", "viewer", now=plane.now(), kind="service"
        )
    code, state = await start_login(oidc_client, provider)
    assert await finish(oidc_client, code, state) != 303  # refused, nothing linked
    async with plane.database.transaction() as conn:
        service = await plane.accounts.require(conn, "trader@example.test")
    assert service.oidc_subject is None
    assert service.role == "viewer"


async def test_the_callback_may_reach_another_replica(
    oidc_client: Client,
    provider: FakeProvider,
    plane_factory: Callable[..., ControlPlane],
    client_factory: ClientFactory,
) -> None:
    # Two replicas behind one Service, no sticky sessions: the pending login was in the
    # memory of the replica that started it, so about half the callbacks failed.
    other = await client_factory(
        plane_factory(
            oidc_issuer=provider.url,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=Secret(CLIENT_SECRET),
            public_url="http://127.0.0.1:8088",
        )
    )
    code, state = await start_login(oidc_client, provider)
    for cookie in oidc_client.session.cookie_jar:
        other.session.cookie_jar.update_cookies({cookie.key: cookie.value})
    assert await finish(other, code, state) == 303
    assert (await (await other.get("/api/me")).json())["user"] == "trader@example.test"


async def test_a_login_left_past_its_ten_minutes_is_refused(
    oidc_client: Client, provider: FakeProvider, clock: ManualClock
) -> None:
    code, state = await start_login(oidc_client, provider)
    clock.advance(600.0)
    assert await finish(oidc_client, code, state) == 401
    assert provider.token_requests == 0


def test_a_pending_login_round_trips_its_cookie_text_and_refuses_other_text() -> None:
    pending = PendingLogin("s-1", "n_2", "v-3", 1_700_000_000.25)
    assert PendingLogin.decode(pending.encode()) == pending
    for bad in ("", "a~b~c", "a~b~c~d~e", "a~~c~1", "a~b~c~later"):
        assert PendingLogin.decode(bad) is None
