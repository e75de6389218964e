from __future__ import annotations

import os
import shutil

import pytest
import redis.asyncio as aioredis

from mdp_core.ports import free_port
from mdp_platform.embedded import EmbeddedRedis, EmbeddedRedisError
from mdp_testing.redis_server import RedisServer

KINDS = ["fakeredis", "auto"]


@pytest.mark.parametrize("prefer", KINDS)
async def test_the_embedded_store_speaks_redis_with_pubsub_and_lua(prefer: str) -> None:
    if prefer == "auto" and shutil.which("redis-server") is None:
        reason = "redis-server is not installed here; the fakeredis case covers the fallback"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"{reason}; CI=true installs it (.ci/run)", pytrace=False)
        pytest.skip(reason)
    async with EmbeddedRedis(prefer=prefer) as store:  # type: ignore[arg-type]
        assert store.kind == ("fakeredis" if prefer == "fakeredis" else "redis-server")
        client = aioredis.from_url(store.url(1))
        try:
            pubsub = client.pubsub()
            await pubsub.psubscribe("quote:*")
            assert await client.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, "k", "v")
            assert await client.publish("quote:ACME", b"x") == 1
            messages = [await pubsub.get_message(timeout=2) for _ in range(2)]
            assert [m["type"] for m in messages if m] == ["psubscribe", "pmessage"]
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()
        url = store.url()
    assert store.kind == "stopped"
    with pytest.raises(EmbeddedRedisError):
        store.url()
    probe = aioredis.from_url(url, socket_connect_timeout=0.5)
    with pytest.raises(aioredis.ConnectionError):
        await probe.ping()
    await probe.aclose()


async def test_a_port_taken_before_redis_server_binds_it_moves_to_a_fresh_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pick hands out, twice, the port of a Redis another process runs."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed here")
    from mdp_platform import embedded

    other = RedisServer()
    await other.start()
    picks = iter([other.port, other.port])
    monkeypatch.setattr(embedded, "free_port", lambda: next(picks, None) or free_port())
    theirs = aioredis.from_url(other.url())
    try:
        async with EmbeddedRedis() as store:
            assert store.kind == "redis-server"
            client = aioredis.from_url(store.url())
            try:
                server = await client.info("server")
                assert await client.set("demo", "ours")
            finally:
                await client.aclose()
            assert int(server["tcp_port"]) != other.port
        assert await theirs.dbsize() == 0  # nothing of the demo's went there
    finally:
        await theirs.aclose()
        await other.close()


async def test_a_redis_server_that_fails_for_another_reason_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed here")
    monkeypatch.setattr(shutil, "which", lambda _: "/bin/false")  # exits at once, logs nothing
    with pytest.raises(EmbeddedRedisError, match=r"did not start$"):
        await EmbeddedRedis().start()
