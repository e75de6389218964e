"""The listeners' runtime controls, called server-side with their control tokens.

The browser never sees the listener's address or bearer token: it calls the SCP, the SCP
checks the user's role and CSRF token, and only then forwards one of a fixed set of calls.
Anything else (another path, another method) is refused here, so the SCP cannot be used as a
general proxy into the data plane.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

__all__ = ["CONTROL_CALLS", "NEWS_CONTROL_CALLS", "ControlReply", "ListenerControl"]

CONTROL_CALLS: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "subscriptions"),
        ("PUT", "subscriptions"),
        ("PUT", "feed"),
        ("POST", "start"),
        ("POST", "stop"),
    }
)
"""The (method, action) pairs the SCP forwards to ``<listener>/control/<action>``."""

NEWS_CONTROL_CALLS: frozenset[tuple[str, str]] = frozenset(
    {("GET", "state"), ("POST", "start"), ("POST", "stop")}
)
"""The pairs it forwards to the news listener's ``/control/<action>``."""

_TIMEOUT = aiohttp.ClientTimeout(total=10)
_MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class ControlReply:
    """The listener's answer: HTTP status and JSON body (an ``error`` object when it failed)."""

    status: int
    body: object


class ListenerControl:
    """Client of the listener's ``/control`` routes.

    Args:
        base_url: the listener's health/control server, e.g. ``http://127.0.0.1:8081``.
        token: the bearer token of its control routes.
        calls: the (method, action) pairs allowed (the Massive listener's by default).
    """

    def __init__(
        self, base_url: str, token: str, calls: frozenset[tuple[str, str]] = CONTROL_CALLS
    ) -> None:
        self._calls = calls
        self._base = base_url.rstrip("/")
        self._token = token
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Release the HTTP client."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def call(self, method: str, action: str, body: object = None) -> ControlReply:
        """Forward one allowed call; network failures become a 502 reply, never an exception.

        Raises:
            ValueError: if (method, action) is not one of the allowed calls.
        """
        if (method, action) not in self._calls:
            msg = f"{method} {action} is not a listener control call"
            raise ValueError(msg)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=_TIMEOUT)
        headers = {"Authorization": f"Bearer {self._token}"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self._base}/control/{action}"
        try:
            async with self._http.request(method, url, data=data, headers=headers) as response:
                raw = await response.content.read(_MAX_BODY)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ControlReply(502, {"error": f"listener unreachable: {type(exc).__name__}"})
        try:
            parsed: object = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return ControlReply(502, {"error": "the listener answered with something not JSON"})
        if status in (401, 403):
            # The SCP's token was refused: that is our configuration problem, not the user's.
            return ControlReply(502, {"error": "the listener refused the SCP's control token"})
        return ControlReply(status, parsed)
