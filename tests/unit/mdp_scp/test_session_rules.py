"""Signed values at their edges. Pinned by mutation testing (issue 21)."""

from __future__ import annotations

import pytest

from mdp_scp.sessions import Signer


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
