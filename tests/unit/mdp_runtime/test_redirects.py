"""A redirect answered to a provider connection is refused: the key never reaches its target."""

from __future__ import annotations

import http
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import SecurityError
from websockets.http11 import Request, Response

from mdp_runtime import redirects
from mdp_runtime.redirects import refuse_websocket_redirects


class Target:
    """Where the redirect points: records the headers of every handshake it receives."""

    def __init__(self) -> None:
        self.handshakes: list[Headers] = []

    def process_request(self, connection: ServerConnection, request: Request) -> None:
        del connection
        self.handshakes.append(request.headers)


@asynccontextmanager
async def servers(status: int = 302) -> AsyncIterator[tuple[str, Target]]:
    """A feed that answers ``status`` with a Location on another port, and that target."""
    target = Target()

    async def echo(connection: ServerConnection) -> None:
        await connection.send('[{"ev":"status","status":"connected"}]')

    async with serve(echo, "127.0.0.1", 0, process_request=target.process_request) as other:
        to = f"ws://127.0.0.1:{_port(other)}/stocks"

        def redirect(connection: ServerConnection, request: Request) -> Response:
            del connection, request
            return Response(status, http.HTTPStatus(status).phrase, Headers({"Location": to}), b"")

        async with serve(echo, "127.0.0.1", 0, process_request=redirect) as feed:
            yield f"ws://127.0.0.1:{_port(feed)}/stocks", target


def _port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


@pytest.fixture(autouse=True)
def _websockets_own_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The policy is process-wide (a listener test may have set it): websockets' own for each
    # test here, and whatever was there before afterwards.
    monkeypatch.setattr(connect, "process_redirect", redirects._FOLLOWED)


async def test_without_the_policy_the_key_header_follows_the_redirect() -> None:
    # What the policy is for (websockets strips only Authorization, Cookie, Proxy-Authorization).
    async with (
        servers() as (url, target),
        connect(url, additional_headers={"x-api-key": "KEY"}) as websocket,
    ):
        await websocket.recv()
    assert [h.get("x-api-key") for h in target.handshakes] == ["KEY"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_refused_and_nothing_reaches_its_target(status: int) -> None:
    refuse_websocket_redirects()
    refuse_websocket_redirects()  # idempotent
    async with servers(status) as (url, target):
        with pytest.raises(SecurityError, match="refused a redirect"):
            async with connect(url, additional_headers={"x-api-key": "KEY"}):
                pass
    assert target.handshakes == []
