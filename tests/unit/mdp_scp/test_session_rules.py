"""Signed values and session lifetimes at their edges. Pinned by mutation testing (issue 21)."""

from __future__ import annotations

import pytest

from mdp_scp.sessions import SessionStore, Signer


def test_a_signing_key_needs_16_bytes() -> None:
    with pytest.raises(ValueError, match=r"^a signing key needs at least 16 bytes$"):
        Signer(b"k" * 15)
    assert Signer(b"k" * 16).unsign(Signer(b"k" * 16).sign("v", "p"), "p") == "v"


def test_signatures_are_unpadded_base64url_of_a_sha256_mac() -> None:
    signature = Signer(b"k" * 32).signature("value", "purpose")
    assert len(signature) == 43
    assert "=" not in signature
    assert signature != Signer(b"k" * 32).signature("value", "other purpose")


def test_a_value_may_hold_dots_and_an_empty_value_never_verifies() -> None:
    signer = Signer(b"k" * 32)
    assert signer.unsign(signer.sign("a.b.c", "p"), "p") == "a.b.c"
    assert signer.unsign(signer.sign("", "p"), "p") is None
    assert signer.unsign("no-dot", "p") is None
    assert signer.unsign(signer.sign("v", "p"), "q") is None


def test_sessions_carry_who_logged_in_with_long_random_ids() -> None:
    store = SessionStore(Signer(b"k" * 32), ttl_seconds=10)
    session, cookie = store.create("ann", "viewer", now=0.0)
    assert (session.user, session.role, session.expires_at) == ("ann", "viewer", 10.0)
    assert len(session.session_id) == len(session.csrf_token) == 43
    assert store.resolve(cookie, now=9.999) == session
    store.end(session)
    store.end(session)  # ending twice is harmless
    assert store.resolve(cookie, now=1.0) is None


def test_a_session_ends_exactly_at_its_expiry() -> None:
    store = SessionStore(Signer(b"k" * 32), ttl_seconds=10)
    _, cookie = store.create("ann", "admin", now=0.0)
    store.create("bob", "viewer", now=10.0)  # creating purges what expired by now
    assert len(store) == 1
    _, other = store.create("cid", "viewer", now=10.0)
    assert store.resolve(other, now=20.0) is None
    assert store.resolve(cookie, now=10.0) is None
