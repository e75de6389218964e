"""The listener's authenticated control routes, mounted on the runtime's health server.

``GET /control/subscriptions``, ``PUT /control/subscriptions`` (``{"topics": [...]}``),
``PUT /control/feed`` (``{"feed": "...", "market": "stocks", "secure": true}``),
``POST /control/start`` and ``POST /control/stop``. Every route needs the bearer token
(``MDP_LISTENER_CONTROL_TOKEN``); the health server refuses all of them when it is unset.
"""

from __future__ import annotations

from collections.abc import Mapping

from mdp_listener.listener import InvalidTopicError, MassiveListener
from mdp_runtime import ControlRejectedError, ControlRequest, HealthServer

__all__ = ["mount_control"]


def _object(body: object) -> Mapping[str, object]:
    if not isinstance(body, Mapping):
        msg = "the request body must be a JSON object"
        raise ControlRejectedError(msg)
    return body


def mount_control(server: HealthServer, listener: MassiveListener) -> None:
    """Register the listener's control routes on ``server`` (before it starts)."""

    async def get_subscriptions(_: ControlRequest) -> Mapping[str, object]:
        return {"topics": list(listener.subscriptions)}

    async def put_subscriptions(request: ControlRequest) -> Mapping[str, object]:
        topics = _object(request.body).get("topics")
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            msg = 'expected {"topics": ["T.*", "A.AAPL", ...]}'
            raise ControlRejectedError(msg)
        try:
            applied = listener.set_subscriptions(topics)
        except InvalidTopicError as exc:
            raise ControlRejectedError(str(exc)) from None
        return {"topics": list(applied)}

    async def put_feed(request: ControlRequest) -> Mapping[str, object]:
        body = _object(request.body)
        feed, market, secure = body.get("feed"), body.get("market"), body.get("secure")
        if not isinstance(feed, str) or (market is not None and not isinstance(market, str)):
            msg = 'expected {"feed": "socket.massive.com", "market": "stocks", "secure": true}'
            raise ControlRejectedError(msg)
        if secure is not None and not isinstance(secure, bool):
            msg = '"secure" must be true or false'
            raise ControlRejectedError(msg)
        try:
            listener.set_feed(feed, market=market, secure=secure)
        except ValueError as exc:
            raise ControlRejectedError(str(exc)) from None
        return {"feed": listener.feed, "market": listener.market}

    async def start(_: ControlRequest) -> Mapping[str, object]:
        listener.start_streaming()
        return {"enabled": True}

    async def stop(_: ControlRequest) -> Mapping[str, object]:
        listener.stop_streaming()
        return {"enabled": False}

    server.add_control("GET", "/subscriptions", get_subscriptions)
    server.add_control("PUT", "/subscriptions", put_subscriptions)
    server.add_control("PUT", "/feed", put_feed)
    server.add_control("POST", "/start", start)
    server.add_control("POST", "/stop", stop)
