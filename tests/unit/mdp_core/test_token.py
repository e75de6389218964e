import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_core.token import (
    TokenBadSignature,
    TokenClaims,
    TokenError,
    TokenExpired,
    TokenMalformed,
    issue_token,
    secret_problem,
    verify_token,
)

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip_returns_the_claims() -> None:
    token = issue_token(SECRET, "alice", ["quote:*", "scanner:*"], 300, NOW)
    claims = verify_token(SECRET, token, NOW + 10)
    assert claims == TokenClaims(
        subject="alice",
        feeds=("quote:*", "scanner:*"),
        issued_at=int(NOW),
        expires_at=int(NOW) + 300,
    )


def test_payload_is_plain_base64url_json_in_the_documented_shape() -> None:
    token = issue_token(SECRET, "bob", ["alerts:hod"], 60, NOW)
    payload_part, signature_part = token.split(".")
    assert "=" not in token
    payload = json.loads(base64.urlsafe_b64decode(payload_part + "=" * (-len(payload_part) % 4)))
    assert payload == {
        "v": 1,
        "sub": "bob",
        "feeds": ["alerts:hod"],
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }
    assert len(base64.urlsafe_b64decode(signature_part + "=")) == 32


def test_bytes_secret_is_equivalent_to_str_secret() -> None:
    token = issue_token(SECRET.encode(), "alice", ["*"], 60, NOW)
    assert verify_token(SECRET, token, NOW).subject == "alice"


def test_expired_at_exactly_exp() -> None:
    token = issue_token(SECRET, "alice", ["*"], 60, NOW)
    verify_token(SECRET, token, NOW + 59.9)
    with pytest.raises(TokenExpired):
        verify_token(SECRET, token, NOW + 60)


def test_another_secret_is_a_bad_signature() -> None:
    token = issue_token("other-secret", "alice", ["*"], 60, NOW)
    with pytest.raises(TokenBadSignature):
        verify_token(SECRET, token, NOW)


def test_tampered_payload_is_a_bad_signature() -> None:
    token = issue_token(SECRET, "alice", ["quote:AAPL"], 60, NOW)
    _, signature = token.split(".")
    forged = _b64(
        json.dumps({"v": 1, "sub": "alice", "feeds": ["*"], "iat": 0, "exp": 2**40}).encode()
    )
    with pytest.raises(TokenBadSignature):
        verify_token(SECRET, f"{forged}.{signature}", NOW)


def test_signature_is_checked_before_expiry() -> None:
    token = issue_token("other", "alice", ["*"], 60, NOW)
    with pytest.raises(TokenBadSignature):
        verify_token(SECRET, token, NOW + 3600)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", ".sig", "payload.", "pay load.sig", "é.é", "x" * 9000, "abc.!!!!"],
)
def test_malformed_strings(token: str) -> None:
    with pytest.raises(TokenMalformed):
        verify_token(SECRET, token, NOW)


def _signed(payload: bytes) -> str:
    import hashlib
    import hmac

    encoded = _b64(payload)
    signature = hmac.new(SECRET.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{encoded}.{_b64(signature)}"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"v": 1, "sub": "a", "feeds": "quote:*", "iat": 0, "exp": 9999999999}',
        b'{"v": 1, "sub": "a", "iat": 0, "exp": 9999999999}',
        b'{"v": 2, "sub": "a", "feeds": [], "iat": 0, "exp": 9999999999}',
    ],
)
def test_correctly_signed_but_invalid_payloads_are_malformed(payload: bytes) -> None:
    with pytest.raises(TokenMalformed):
        verify_token(SECRET, _signed(payload), NOW)


def test_errors_share_a_base_with_a_kind() -> None:
    kinds = {cls.kind for cls in (TokenMalformed, TokenBadSignature, TokenExpired)}
    assert kinds == {"malformed", "bad_signature", "expired"}
    assert all(issubclass(c, TokenError) for c in (TokenMalformed, TokenBadSignature, TokenExpired))


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_issue_refuses_bad_lifetimes(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        issue_token(SECRET, "alice", ["*"], ttl, NOW)


def test_empty_secret_and_subject_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        issue_token("", "alice", ["*"], 60, NOW)
    with pytest.raises(ValueError, match="subject"):
        issue_token(SECRET, "", ["*"], 60, NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_token(b"", "a.b", NOW)


@given(
    subject=st.text(min_size=1, max_size=40),
    feeds=st.lists(st.text(max_size=30), max_size=5),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_any_single_character_change_is_refused(subject: str, feeds: list[str], flip: int) -> None:
    token = issue_token(SECRET, subject, feeds, 600, NOW)
    assert verify_token(SECRET, token, NOW).feeds == tuple(feeds)
    position = flip % len(token)
    replacement = "A" if token[position] != "A" else "B"
    changed = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(TokenError):
        verify_token(SECRET, changed, NOW)


# --------------------------------------------------------------------------------------------
# Pinned by mutation testing (issue 21): exact refusals, the length bound, and the one
# canonical spelling of each part.

import hashlib  # noqa: E402 - grouped with the tests that use it
import hmac  # noqa: E402

from mdp_core import token as token_module  # noqa: E402


def _sign_text(payload_part: str) -> str:
    digest = hmac.new(SECRET.encode(), payload_part.encode(), hashlib.sha256).digest()
    return _b64(digest)


def _non_canonical(part: str) -> str:
    """The same bytes spelled differently: the unused low bits of the last character set."""
    assert len(part) % 4 in {2, 3}
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    value = alphabet.index(part[-1]) | (0b1111 if len(part) % 4 == 2 else 0b11)
    changed = part[:-1] + alphabet[value]
    assert changed != part
    assert base64.urlsafe_b64decode(changed + "=" * (-len(changed) % 4)) == (
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    )
    return changed


def test_a_non_canonical_signature_spelling_is_refused() -> None:
    token = issue_token(SECRET, "alice", ["*"], 60, NOW)
    payload_part, signature_part = token.split(".")
    with pytest.raises(TokenMalformed, match=r"^the signature part is not base64url$"):
        verify_token(SECRET, f"{payload_part}.{_non_canonical(signature_part)}", NOW)


def test_a_non_canonical_payload_spelling_is_refused_even_when_signed() -> None:
    payload = b'{"v":1,"sub":"a","feeds":[],"iat":0,"exp":9999999999}'
    part = _b64(payload)
    if len(part) % 4 not in {2, 3}:
        part = _b64(payload + b" ")
    odd = _non_canonical(part)
    with pytest.raises(TokenMalformed, match=r"^the payload is not a valid token payload"):
        verify_token(SECRET, f"{odd}.{_sign_text(odd)}", NOW)


def test_base64url_helpers_keep_every_character_of_the_alphabet() -> None:
    for data in (b"\x00\x00\x17", b"\xff\xff\xff", b"\x00", b"\x00\x00", b""):
        encoded = token_module._b64encode(data)
        assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=")
        if encoded:
            assert token_module._b64decode(encoded) == data
    with pytest.raises(ValueError, match=r"^not unpadded base64url$"):
        token_module._b64decode(b"AA==")
    with pytest.raises(ValueError, match=r"^non-canonical base64url$"):
        token_module._b64decode(b"AB")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "a token is a non-empty string of at most 8192 characters"),
        ("a" * 8193, "a token is a non-empty string of at most 8192 characters"),
        ("é.abc", "a token is ASCII only"),
        ("abc", "a token is two base64url parts joined by '.'"),
        (".abc", "a token is two base64url parts joined by '.'"),
        ("abc.", "a token is two base64url parts joined by '.'"),
        ("abc.de.f", "a token is two base64url parts joined by '.'"),
        ("a+c.abc", "the payload part is not base64url"),
        ("abc.a+c", "the signature part is not base64url"),
        ("abc.abcd", "the token signature does not match"),
    ],
)
def test_each_refusal_says_exactly_why(token: str, message: str) -> None:
    with pytest.raises(TokenError) as refused:
        verify_token(SECRET, token, NOW)
    assert str(refused.value) == message


def test_correctly_signed_refusals_say_exactly_why() -> None:
    with pytest.raises(TokenMalformed, match=r"^unsupported token version 2$"):
        verify_token(SECRET, _signed(b'{"v":2,"sub":"a","feeds":[],"iat":0,"exp":9}'), NOW)
    with pytest.raises(TokenExpired) as expired:
        verify_token(SECRET, issue_token(SECRET, "a", [], 60, NOW), NOW + 60)
    assert str(expired.value) == f"the token expired at {int(NOW) + 60}"
    with pytest.raises(TokenMalformed) as bad:
        verify_token(SECRET, _signed(b"[]"), NOW)
    assert str(bad.value).startswith("the payload is not a valid token payload (")
    with pytest.raises(ValueError, match=r"^the token secret must not be empty$"):
        verify_token("", "a.b", NOW)
    with pytest.raises(ValueError, match=r"^a token needs a subject$"):
        issue_token(SECRET, "", [], 60, NOW)


def test_the_length_bound_is_inclusive() -> None:
    tokens = {
        len(t): t for t in (issue_token(SECRET, "a", ["x" * n], 60, NOW) for n in range(6000, 6200))
    }
    assert verify_token(SECRET, tokens[8192], NOW).subject == "a"
    with pytest.raises(TokenMalformed, match="at most 8192"):
        verify_token(SECRET, min(t for n, t in tokens.items() if n > 8192), NOW)


def test_a_lifetime_under_one_second_is_allowed() -> None:
    token = issue_token(SECRET, "a", [], 0.5, NOW + 0.6)
    assert verify_token(SECRET, token, NOW + 0.6).expires_at == int(NOW) + 1


@pytest.mark.parametrize(
    ("secret", "refused"),
    [("", True), ("a" * 15, True), ("a" * 16, False), ("é" * 8, False), ("é" * 7 + "a", True)],
)
def test_a_token_secret_needs_16_bytes_not_16_characters(secret: str, refused: bool) -> None:
    problem = secret_problem(secret)
    assert (problem is not None) is refused
    if refused:
        assert problem == "MDP_WDS_TOKEN_SECRET needs at least 16 bytes (use 32 random ones)"
