"""The hiredis packer sends the bytes redis-py's own packer sends, and refuses what it refuses.

The reference is redis-py's asyncio ``Connection.pack_command``: the connection the clients of
:func:`mdp_cache.client.create_redis` use must put the very same bytes on the wire.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Connection
from redis.exceptions import DataError

from mdp_cache.client import PackingConnection, create_redis

CUTOFF = Connection()._buffer_cutoff  # the size from which redis-py sends an argument apart

arguments = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=CUTOFF - 2, max_size=CUTOFF + 3),  # both sides of the cutoff
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
)
heads = st.sampled_from(["SET", "EVALSHA", "CONFIG GET", b"SET", b"CLIENT SETNAME"])


def wire(chunks: list[bytes]) -> bytes:
    return b"".join(chunks)


@given(head=heads, rest=st.lists(arguments, max_size=12))
def test_the_wire_bytes_are_redis_pys(head: str | bytes, rest: list[Any]) -> None:
    args = (head, *rest)
    assert wire(PackingConnection().pack_command(*args)) == wire(Connection().pack_command(*args))


def test_large_arguments_go_as_chunks_of_their_own() -> None:
    big = b"r" * (CUTOFF + 1)
    chunks = PackingConnection().pack_command("EVALSHA", "sha", 1, "key", big, "tail")
    assert big in chunks  # not copied into a buffer
    assert wire(chunks) == wire(Connection().pack_command("EVALSHA", "sha", 1, "key", big, "tail"))


@pytest.mark.parametrize(
    "args",
    [
        ("SET", bytearray(b"k"), memoryview(b"v")),
        ("SET", "k", bytearray(b"v" * (CUTOFF + 1))),
    ],
)
def test_buffers_are_sent_as_their_bytes(args: tuple[Any, ...]) -> None:
    assert wire(PackingConnection().pack_command(*args)) == wire(Connection().pack_command(*args))


@pytest.mark.parametrize("bad", [True, None, object(), [b"x"]])
def test_other_types_are_the_data_error_redis_py_raises(bad: Any) -> None:
    with pytest.raises(DataError) as expected:
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError) as got:
        PackingConnection().pack_command("SET", b"k" * (CUTOFF + 1), bad)
    assert str(got.value) == str(expected.value)


def test_plain_urls_get_the_packing_connection_and_tls_keeps_its_own() -> None:
    plain = create_redis("redis://127.0.0.1:6379/0")
    tls = create_redis("rediss://127.0.0.1:6380/0")
    assert plain.connection_pool.connection_class is PackingConnection
    assert tls.connection_pool.connection_class is not PackingConnection
