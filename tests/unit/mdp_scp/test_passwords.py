from __future__ import annotations

import pytest

from mdp_scp.passwords import (
    DEFAULT_PARAMETERS,
    MalformedPasswordHash,
    ScryptParameters,
    generate_password,
    hash_password,
    parse_hash,
    verify_password,
)

FAST = ScryptParameters(n=1 << 10)


def test_a_hash_verifies_its_password_and_nothing_else() -> None:
    stored = hash_password("correct horse", FAST)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("", stored)
    assert "correct horse" not in stored


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("same", FAST) != hash_password("same", FAST)


def test_parameters_are_stored_with_the_hash_and_used_to_verify() -> None:
    stored = hash_password("pw", ScryptParameters(n=1 << 11, r=4, p=2))
    params, salt, digest = parse_hash(stored)
    assert params == ScryptParameters(n=1 << 11, r=4, p=2)
    assert len(salt) == 16
    assert len(digest) == 32
    assert verify_password("pw", stored)
    # Changing the stored cost parameter changes the derived key: verification must fail.
    tampered = stored.replace("$2048$", "$4096$", 1)
    assert not verify_password("pw", tampered)


def test_the_default_parameters_are_strong_and_round_trip() -> None:
    assert DEFAULT_PARAMETERS.n >= 1 << 14
    stored = hash_password("default cost")
    assert stored.startswith(f"scrypt${DEFAULT_PARAMETERS.n}$")
    assert verify_password("default cost", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext",
        "bcrypt$1$2$3$abc$def",
        "scrypt$notanumber$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$1024$8$1$AA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    with pytest.raises(MalformedPasswordHash):
        parse_hash(stored)
    assert not verify_password("anything", stored)


def test_an_empty_password_cannot_be_hashed() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_generated_passwords_are_random_and_long() -> None:
    first, second = generate_password(), generate_password()
    assert first != second
    assert len(first) == 20
