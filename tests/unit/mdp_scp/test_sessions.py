"""Signed cookie values; the database-backed sessions and throttle are tested on SQLite and
PostgreSQL in tests/integration/test_scp_store.py."""

from __future__ import annotations

import pytest

from mdp_scp.sessions import Signer, same_secret

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


def test_same_secret_is_false_for_text_that_is_not_ascii() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abd", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("ab\udcff", "ab\udcff")  # a header byte that is not UTF-8
    assert not same_secret("abc", "ab\udcff")
    assert not same_secret("é", "é")


def test_a_signed_value_that_is_not_ascii_is_refused() -> None:
    signer = Signer(b"k" * 32)
    signed = signer.sign("value", "p")
    assert signer.unsign(signed, "p") == "value"
    assert signer.unsign("valu\udcff." + signed.rpartition(".")[2], "p") is None
    assert signer.unsign(signed + "\udcff", "p") is None
