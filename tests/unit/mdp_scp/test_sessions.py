from __future__ import annotations

import pytest

from mdp_scp.login_throttle import LoginThrottle
from mdp_scp.sessions import SessionStore, Signer

KEY = b"k" * 32


def test_signatures_detect_tampering_and_are_bound_to_a_purpose() -> None:
    signer = Signer(KEY)
    signed = signer.sign("abc", "session")
    assert signer.unsign(signed, "session") == "abc"
    assert signer.unsign(signed, "oidc") is None
    assert signer.unsign("abd" + signed[3:], "session") is None
    assert signer.unsign(signed[:-1], "session") is None
    assert signer.unsign("no-dot", "session") is None
    assert Signer(b"x" * 32).unsign(signed, "session") is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")


def test_sessions_resolve_until_they_expire_on_the_server() -> None:
    store = SessionStore(Signer(KEY), ttl_seconds=100)
    session, cookie = store.create("ann", "viewer", now=1_000.0)
    assert session.session_id not in cookie.rpartition(".")[2]
    assert store.resolve(cookie, now=1_099.0) == session
    assert store.resolve(cookie, now=1_100.0) is None
    assert len(store) == 0


def test_logout_voids_the_cookie_and_forgeries_resolve_to_nothing() -> None:
    store = SessionStore(Signer(KEY), ttl_seconds=100)
    session, cookie = store.create("ann", "admin", now=0.0)
    other_session, other_cookie = store.create("bob", "viewer", now=0.0)
    assert session.csrf_token != other_session.csrf_token
    store.end(session)
    assert store.resolve(cookie, now=1.0) is None
    assert store.resolve(other_cookie, now=1.0) == other_session
    forged = Signer(b"y" * 32).sign(other_session.session_id, "session")
    assert store.resolve(forged, now=1.0) is None
    assert store.resolve(None, now=1.0) is None
    assert store.resolve("", now=1.0) is None


def test_throttle_blocks_a_user_after_the_limit_until_the_window_passes() -> None:
    throttle = LoginThrottle(max_failures=3, window_seconds=60)
    keys = ("user:ann", "addr:1.2.3.4")
    for second in range(3):
        assert throttle.retry_after(keys, now=float(second)) == 0.0
        throttle.failed(keys, now=float(second))
    assert throttle.retry_after(keys, now=3.0) == pytest.approx(57.0)
    # Another address is still blocked for the same user name.
    assert throttle.retry_after(("user:ann", "addr:5.6.7.8"), now=3.0) > 0
    # The oldest failure leaves the window at t=60: one more attempt is allowed.
    assert throttle.retry_after(keys, now=60.0) == 0.0


def test_throttle_blocks_an_address_spraying_many_names() -> None:
    throttle = LoginThrottle(max_failures=3, window_seconds=60)
    for index in range(3):
        throttle.failed((f"user:u{index}", "addr:9.9.9.9"), now=0.0)
    assert throttle.retry_after(("user:fresh", "addr:9.9.9.9"), now=1.0) > 0
    assert throttle.retry_after(("user:fresh", "addr:1.1.1.1"), now=1.0) == 0.0


def test_success_clears_the_user_but_not_the_address() -> None:
    throttle = LoginThrottle(max_failures=2, window_seconds=60)
    throttle.failed(("user:ann", "addr:a"), now=0.0)
    throttle.failed(("user:ann", "addr:a"), now=0.0)
    throttle.succeeded("user:ann")
    assert throttle.retry_after(("user:ann", "addr:b"), now=1.0) == 0.0
    assert throttle.retry_after(("user:ann", "addr:a"), now=1.0) > 0


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_failures=2, window_seconds=60, max_keys=10)
    for index in range(100):
        throttle.failed((f"user:{index}",), now=0.0)
    assert len(throttle._failures) <= 10
