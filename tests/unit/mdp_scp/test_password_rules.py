"""The stored-hash rules at their edges: parameter bounds, short salts and digests, the scheme.

Pinned by mutation testing (issue 21).
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from mdp_scp.passwords import (
    MalformedPasswordHash,
    ScryptParameters,
    generate_password,
    hash_password,
    parse_hash,
    verify_password,
)

_N_MESSAGE = "scrypt n must be a power of two between 2 and 1048576; it was {}"
_RP_MESSAGE = "scrypt r must be 1..32 and p 1..16; they were {} and {}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _stored(password: str, salt: bytes, digest_bytes: int, n: int = 2, r: int = 1) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=1, dklen=digest_bytes)
    return f"scrypt${n}${r}$1${_b64(salt)}${_b64(digest)}"


@pytest.mark.parametrize("n", [2, 4, 1 << 14, 1 << 20])
def test_powers_of_two_from_2_to_2_pow_20_are_accepted(n: int) -> None:
    assert ScryptParameters(n=n).n == n


@pytest.mark.parametrize("n", [-2, 0, 1, 3, 6, 12, (1 << 20) + 2, 1 << 21])
def test_other_costs_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="scrypt n") as refused:
        ScryptParameters(n=n)
    assert str(refused.value) == _N_MESSAGE.format(n)


@pytest.mark.parametrize(("r", "p"), [(1, 1), (32, 1), (1, 16), (32, 16)])
def test_block_size_and_parallelism_bounds_are_inclusive(r: int, p: int) -> None:
    assert (ScryptParameters(r=r, p=p).r, ScryptParameters(r=r, p=p).p) == (r, p)


@pytest.mark.parametrize(("r", "p"), [(0, 1), (33, 1), (1, 0), (1, 17), (0, 0), (33, 17)])
def test_block_size_or_parallelism_out_of_bounds_is_refused(r: int, p: int) -> None:
    with pytest.raises(ValueError, match="scrypt r") as refused:
        ScryptParameters(r=r, p=p)
    assert str(refused.value) == _RP_MESSAGE.format(r, p)


def test_the_shortest_salt_and_digest_accepted_are_8_and_16_bytes() -> None:
    assert verify_password("pw", _stored("pw", b"s" * 8, 16))
    assert not verify_password("other", _stored("pw", b"s" * 8, 16))
    for stored in (_stored("pw", b"s" * 7, 16), _stored("pw", b"s" * 8, 15)):
        assert not verify_password("pw", stored)
        with pytest.raises(MalformedPasswordHash) as refused:
            parse_hash(stored)
        assert str(refused.value) == (
            "a password hash needs at least 8 bytes of salt and 16 of digest"
        )


@pytest.mark.parametrize("salt_bytes", [8, 9, 10, 11, 12, 16])
def test_salts_of_any_length_from_8_bytes_round_trip(salt_bytes: int) -> None:
    salt = bytes(range(salt_bytes))
    params, parsed_salt, digest = parse_hash(_stored("pw", salt, 16))
    assert (params, parsed_salt, len(digest)) == (ScryptParameters(2, 1, 1), salt, 16)


@pytest.mark.parametrize(
    "stored",
    [
        "bcrypt$2$1$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$2$1$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0$x",
        "scrypt$2$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "",
    ],
)
def test_anything_but_six_scrypt_fields_is_refused(stored: str) -> None:
    with pytest.raises(MalformedPasswordHash) as refused:
        parse_hash(stored)
    assert str(refused.value) == "a password hash must look like scrypt$n$r$p$salt$hash"
    assert not verify_password("pw", stored)


def test_unparsable_numbers_say_so() -> None:
    with pytest.raises(MalformedPasswordHash, match=r"^bad password hash: "):
        parse_hash("scrypt$x$1$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0")


def test_hashes_have_no_padding_and_verify_with_a_large_cost() -> None:
    params = ScryptParameters(n=1 << 15, r=8, p=1)  # needs more than scrypt's default memory
    stored = hash_password("correct horse", params)
    assert "=" not in stored
    assert stored.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse", stored)
    with pytest.raises(ValueError, match=r"^a password must not be empty$"):
        hash_password("")


@pytest.mark.parametrize("length", [1, 20, 60])
def test_generated_passwords_have_the_asked_length(length: int) -> None:
    password = generate_password(length)
    assert len(password) == length
    if length >= 20:  # 120 random bits: a repeat would be a broken generator
        assert password != generate_password(length)
