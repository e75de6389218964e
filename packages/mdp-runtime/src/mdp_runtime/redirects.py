"""A provider's websocket redirect is refused, never followed: it would carry the API key.

websockets follows a 3xx answer to the opening handshake by itself and, to another origin,
strips only the ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` headers. So
Finlight's ``x-api-key`` header went along to whatever host the answer named, and the Massive
client, which retries every failure, sent its ``auth`` message (the key) there once the URL it
had stored pointed at it; the feed allow-list and the TLS rule check only the first hop. After
:func:`refuse_websocket_redirects`, a websocket client of the process treats a redirect as a
:class:`~websockets.exceptions.SecurityError` instead.
"""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, SecurityError

__all__ = ["refuse_websocket_redirects"]

_FOLLOWED = connect.process_redirect
"""websockets' own policy (follows redirects), before :func:`refuse_websocket_redirects`."""


def _refused(self: connect, exc: Exception) -> Exception:
    """``connect.process_redirect`` that follows nothing: a redirect becomes the error."""
    del self
    if isinstance(exc, InvalidStatus) and 300 <= exc.response.status_code < 400:
        location = exc.response.headers.get("Location", "")
        return SecurityError(
            f"refused a redirect ({exc.response.status_code}) to {location[:200]!r}: "
            "a provider connection never follows one (it would carry the API key)"
        )
    return exc


def refuse_websocket_redirects() -> None:
    """Make every websocket client of this process refuse redirects (idempotent).

    The vendors' clients open their connections themselves, with websockets' ``connect``, so
    the policy is set on that class: a process that streams from a provider follows none.
    """
    connect.process_redirect = _refused  # type: ignore[method-assign] # the policy, process-wide
