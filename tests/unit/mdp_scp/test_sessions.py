"""Signed cookie values; the database-backed sessions and throttle are tested on SQLite and
PostgreSQL in tests/integration/test_scp_store.py."""

from __future__ import annotations

import pytest

from mdp_scp.sessions import Signer

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
