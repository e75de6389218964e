"""The Massive REST source never sends its key off the configured host while paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mdp_processor.massive_reference import MassiveReferenceSource

KEY = "massive-rest-key"
BAR = {"o": 10.0, "h": 11.0, "l": 9.5, "c": 10.5, "v": 1000, "vw": 10.2, "t": 1_772_600_000_000}


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """Another host (another port here): records the Authorization of whatever reaches it."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"results": [], "status": "OK"})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", anything)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, seen
    await server.close()


async def feed(next_url: str) -> TestServer:
    """The configured host: one page of daily bars whose next_url is ``next_url``."""

    async def page(request: web.Request) -> web.Response:
        del request
        return web.json_response({"results": [BAR], "status": "OK", "next_url": next_url})

    app = web.Application()
    app.router.add_route("GET", "/v2/aggs/{tail:.*}", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


# "@host/x" moves any base URL; ".evil.example/x" moves one without a port (the real one's).
@pytest.mark.parametrize("shape", ["@127.0.0.1:{port}/v2/x", ".localhost:{port}/v2/x"])
async def test_a_next_url_that_would_change_the_host_is_refused(
    elsewhere: tuple[TestServer, list[str]], shape: str
) -> None:
    # The SDK appends next_url's path to its base URL: "http://feed" + "@other/x" is a URL
    # of "other", and the key rides in the headers.
    other, seen = elsewhere
    server = await feed(shape.format(port=other.port))
    try:
        source = MassiveReferenceSource(KEY, str(server.make_url("")).rstrip("/"))
        with pytest.raises(ValueError, match="off the configured host"):
            await source.daily_bars("AAPL", date(2026, 3, 1), date(2026, 3, 4))
    finally:
        await server.close()
    assert seen == []


async def test_a_next_url_on_the_configured_host_is_followed(
    elsewhere: tuple[TestServer, list[str]],
) -> None:
    del elsewhere
    calls: list[str] = []

    async def page(request: web.Request) -> web.Response:
        calls.append(request.path_qs)
        more = (
            {"next_url": "http://ignored.example/v2/aggs/next?cursor=2"} if len(calls) == 1 else {}
        )
        return web.json_response({"results": [BAR], "status": "OK", **more})

    app = web.Application()
    app.router.add_route("GET", "/v2/aggs/{tail:.*}", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        source = MassiveReferenceSource(KEY, str(server.make_url("")).rstrip("/"))
        bars = await source.daily_bars("AAPL", date(2026, 3, 1), date(2026, 3, 4))
    finally:
        await server.close()
    assert len(bars) == 2  # the absolute next_url's path, on the configured host
    assert calls[1] == "/v2/aggs/next?cursor=2"
