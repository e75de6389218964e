"""JWS verification and JWK parsing at their edges. Pinned by mutation testing (issue 21).

Fast on purpose (no HTTP): the mutation run of ``mdp_scp/jws.py`` uses these tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from mdp_scp.jws import JwsError, RsaPublicKey, decode_unverified, rsa_key_from_jwk, verify_jws

from .test_oidc import CLIENT_SECRET, RSA_E, RSA_N, b64, b64_int, make_jws, rs256

SECRET = CLIENT_SECRET.encode()
KEY = RsaPublicKey(n=RSA_N, e=RSA_E, kid="k1")


def _jwk(**fields: Any) -> dict[str, Any]:
    return {"kty": "RSA", "n": b64_int(RSA_N), "e": b64_int(RSA_E), **fields}


def _token(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def test_a_jwk_becomes_a_key_with_its_id() -> None:
    assert rsa_key_from_jwk(_jwk(kid="k9")) == RsaPublicKey(RSA_N, RSA_E, "k9")
    assert rsa_key_from_jwk(_jwk(use="sig")).kid is None
    assert rsa_key_from_jwk(_jwk(e=b64_int(3))).e == 3  # the smallest exponent allowed
    assert rsa_key_from_jwk(_jwk(e=b64_int(9))).e == 9  # odd is enough


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({"kty": "EC"}, "not an RSA key"),
        (_jwk(use="enc"), "not a signing key"),
        (_jwk(n=5), "an RSA key parameter must be a base64url string"),
        (_jwk(n=""), "an RSA key parameter must be a base64url string"),
        (_jwk(e=None), "an RSA key parameter must be a base64url string"),
        (_jwk(n=b64_int(RSA_N >> 1100)), "RSA key too small or with a bad exponent"),
        (_jwk(e=b64_int(1)), "RSA key too small or with a bad exponent"),
        (_jwk(e=b64_int(65536)), "RSA key too small or with a bad exponent"),
    ],
)
def test_jwks_that_are_no_rsa_signing_keys_are_refused(jwk: dict[str, Any], message: str) -> None:
    with pytest.raises(JwsError) as refused:
        rsa_key_from_jwk(jwk)
    assert str(refused.value) == message


def test_bad_base64_is_refused_as_such() -> None:
    with pytest.raises(JwsError, match=r"^bad base64url: "):
        rsa_key_from_jwk(_jwk(n="A"))


def test_decoding_splits_without_verifying() -> None:
    token = make_jws({"sub": "ann"}, "HS256")
    header, claims, signing_input, signature = decode_unverified(token)
    assert (header["alg"], claims) == ("HS256", {"sub": "ann"})
    assert signing_input == token.rsplit(".", 1)[0].encode()
    assert signature == hmac.new(SECRET, signing_input, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("a.b", "a JWS has three dot-separated parts"),
        ("a.b.c.d", "a JWS has three dot-separated parts"),
        (".e30.", "a JWS has three dot-separated parts"),
        ("e30..", "a JWS has three dot-separated parts"),
        (f"{b64(b'[]')}.{b64(b'{}')}.", "JWS header and payload must be JSON objects"),
        (f"{b64(b'{}')}.{b64(b'[]')}.", "JWS header and payload must be JSON objects"),
    ],
)
def test_malformed_tokens_say_why(token: str, message: str) -> None:
    with pytest.raises(JwsError) as refused:
        decode_unverified(token)
    assert str(refused.value) == message
    assert decode_unverified(f"{b64(b'{}')}.{b64(b'{}')}.")[3] == b""  # an empty signature parses


def test_hs256_needs_the_secret_and_the_right_mac() -> None:
    token = make_jws({"sub": "ann"}, "HS256")
    assert verify_jws(token, hmac_secret=SECRET, rsa_keys=[]) == {"sub": "ann"}
    with pytest.raises(JwsError) as wrong:
        verify_jws(make_jws({}, "HS256", wrong_key=True), hmac_secret=SECRET, rsa_keys=[])
    assert str(wrong.value) == "HS256 signature does not match"
    for keys in ([], [KEY]):
        with pytest.raises(JwsError) as refused:
            verify_jws(token, hmac_secret=None, rsa_keys=keys)
        assert str(refused.value) == "signature algorithm 'HS256' is not allowed"


def test_rs256_needs_a_provider_key_whose_id_matches() -> None:
    token = make_jws({"sub": "bob"}, "RS256", kid="k1")
    assert verify_jws(token, hmac_secret=None, rsa_keys=[KEY]) == {"sub": "bob"}
    assert verify_jws(token, hmac_secret=None, rsa_keys=[RsaPublicKey(RSA_N, RSA_E)]) == {
        "sub": "bob"
    }
    other_id = RsaPublicKey(RSA_N, RSA_E, "k2")
    with pytest.raises(JwsError) as refused:
        verify_jws(token, hmac_secret=None, rsa_keys=[other_id])
    assert str(refused.value) == "RS256 signature does not match any provider key"
    header = {"alg": "RS256"}  # no kid: every key is tried
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps({}).encode())}"
    untagged = f"{signing_input}.{b64(rs256(signing_input.encode()))}"
    assert verify_jws(untagged, hmac_secret=None, rsa_keys=[other_id]) == {}
    with pytest.raises(JwsError, match=r"^signature algorithm 'RS256' is not allowed$"):
        verify_jws(token, hmac_secret=SECRET, rsa_keys=[])


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"\x01" * 255,  # one byte short
        RSA_N.to_bytes(256, "big"),  # not below the modulus
        (RSA_N + 1).to_bytes(256, "big"),
        b"\x00" * 256,
    ],
)
def test_rs256_signatures_of_the_wrong_size_or_range_are_refused(signature: bytes) -> None:
    token = _token({"alg": "RS256", "kid": "k1"}, {}, signature)
    with pytest.raises(JwsError, match="does not match any provider key"):
        verify_jws(token, hmac_secret=None, rsa_keys=[KEY])
