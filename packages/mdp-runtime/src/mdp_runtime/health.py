"""The HTTP side of every service: probes, metrics, status and authenticated control routes.

Kubernetes (and the demo's supervisor) asks two different questions, so there are two
probes: ``/livez`` only proves the event loop still answers (restart me if not), while
``/readyz`` runs the service's readiness checks (send me work or not). ``/metrics`` serves the
service's catalogue of typed families (:mod:`mdp_runtime.metrics`) read from its metrics
snapshot, and ``/status`` returns the same snapshot with readiness detail as JSON for people
and the control plane.

Control routes change a running service (subscriptions, feed, restart). They live under
``/control/`` and need ``Authorization: Bearer <token>``; a server built without a token
refuses every control call, so a service is never remotely controllable by accident.
"""

from __future__ import annotations

import functools
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from prometheus_client.registry import Collector

from mdp_runtime.metrics import CONTENT_TYPE, Family, exposition, service_registry

__all__ = [
    "ControlHandler",
    "ControlRejectedError",
    "ControlRequest",
    "HealthServer",
    "ReadinessCheck",
]

ReadinessCheck = Callable[[], bool | tuple[bool, str]]
"""A readiness check: ``True``/``False``, or ``(ready, reason)`` to say why."""

_log = structlog.get_logger("mdp_runtime.health")
_dumps = functools.partial(json.dumps, default=str)
_CONTROL_PREFIX = "/control"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """What a control handler receives: an authenticated call with its decoded JSON body.

    Attributes:
        method: the HTTP method, upper case.
        path: the full request path, starting with ``/control/``.
        query: the query string parameters.
        body: the decoded JSON body, or None when the request had no body.
    """

    method: str
    path: str
    query: Mapping[str, str]
    body: object


ControlHandler = Callable[[ControlRequest], Awaitable[Mapping[str, object] | None]]
"""A control handler returns a JSON-serializable mapping (or None for ``{"status": "ok"}``)."""


class ControlRejectedError(Exception):
    """Raised by a control handler to refuse a request with a specific status and message.

    Args:
        message: what was wrong, returned to the caller as ``{"error": message}``.
        status: the HTTP status, a 4xx code (400 unless given).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class HealthServer:
    """An aiohttp server bound to one host serving probes, metrics, status and control.

    Args:
        host: the address to bind; only this address is served (use 127.0.0.1 in tests).
        port: the TCP port; 0 picks a free one, readable from :attr:`port` after start.
        service: the service name, used in ``/status`` and as the metric prefix
            (``mdp_<service>_...``).
        version: the service version, reported by ``/status``.
        metrics_snapshot: returns the current figures as a nested mapping.
        readiness: named readiness checks; the mapping is used as given (not copied), so
            checks added to a dict passed here later are honoured. ``/readyz`` is 200 only
            when every check passes.
        control_token: the bearer token of the control routes; None disables control.
        monotonic: the monotonic time source used for uptime.
        metric_families: the service's catalogue: which figures of the snapshot ``/metrics``
            exposes, typed and described (see :mod:`mdp_runtime.metrics`).
        collectors: more ``prometheus_client`` collectors served on ``/metrics``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        service: str,
        version: str,
        metrics_snapshot: Callable[[], Mapping[str, object]],
        readiness: Mapping[str, ReadinessCheck],
        control_token: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        metric_families: Iterable[Family] = (),
        collectors: Iterable[Collector] = (),
    ) -> None:
        if control_token is not None and not control_token.strip():
            msg = "control_token must be None (control disabled) or a non-empty string"
            raise ValueError(msg)
        self._host = host
        self._requested_port = port
        self._service = service
        self._version = version
        self._metrics_snapshot = metrics_snapshot
        self._readiness = readiness
        self._token = control_token.encode() if control_token is not None else None
        self._monotonic = monotonic
        self._started_at = monotonic()
        self._stopping = False
        self._registry = service_registry(
            service, version, metric_families, self._snapshot, *collectors
        )
        self._app = web.Application()
        self._app.router.add_get("/livez", self._livez)
        self._app.router.add_get("/readyz", self._readyz)
        self._app.router.add_get("/metrics", self._metrics)
        self._app.router.add_get("/status", self._status)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---------------------------------------------------------------------------- set-up

    def add_control(self, method: str, path: str, handler: ControlHandler) -> None:
        """Register ``handler`` for ``method`` at ``/control/<path>``.

        Args:
            method: the HTTP method (``"POST"``, ``"GET"``...).
            path: the route below ``/control``; ``"/subscriptions"`` and
                ``"/control/subscriptions"`` register the same route.
            handler: the coroutine function that serves authenticated calls.

        Raises:
            RuntimeError: if the server has already started (routes are frozen then).
        """
        if self._runner is not None:
            msg = "add_control() must be called before start()"
            raise RuntimeError(msg)
        route = "/" + path.strip("/")
        if route != _CONTROL_PREFIX and not route.startswith(_CONTROL_PREFIX + "/"):
            route = _CONTROL_PREFIX + route
        self._app.router.add_route(method.upper(), route, self._control_endpoint(handler))

    def mark_stopping(self) -> None:
        """Fail readiness from now on, so traffic drains while the service shuts down."""
        self._stopping = True

    async def start(self) -> None:
        """Bind the socket and start serving."""
        if self._runner is not None:
            msg = "the health server is already started"
            raise RuntimeError(msg)
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        _log.info("health_server_listening", service=self._service, url=self.url)

    async def stop(self) -> None:
        """Stop serving and release the socket; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: before :meth:`start`.
        """
        if self._port is None:
            msg = "the health server has not been started"
            raise RuntimeError(msg)
        return self._port

    @property
    def url(self) -> str:
        """The base URL of the server, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    # ---------------------------------------------------------------------------- checks

    def readiness_report(self) -> dict[str, tuple[bool, str]]:
        """Run every readiness check and return ``{name: (ready, reason)}``.

        A check that raises counts as not ready, with the exception as the reason: a broken
        check must not make the probe itself fail with a 500.
        """
        report: dict[str, tuple[bool, str]] = {}
        if self._stopping:
            report["stopping"] = (False, "the service is shutting down")
        for name, check in list(self._readiness.items()):
            try:
                outcome = check()
            except Exception as exc:  # any failure of a check means not ready
                report[name] = (False, f"check raised {type(exc).__name__}: {exc}")
                continue
            if isinstance(outcome, tuple):
                ready, reason = bool(outcome[0]), str(outcome[1])
            else:
                ready, reason = bool(outcome), ("ok" if outcome else "not ready")
            report[name] = (ready, reason)
        return report

    # ---------------------------------------------------------------------------- routes

    async def _livez(self, request: web.Request) -> web.Response:
        del request
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        del request
        report = self.readiness_report()
        failing = {name: reason for name, (ready, reason) in report.items() if not ready}
        checks = {
            name: {"ready": ready, "reason": reason} for name, (ready, reason) in report.items()
        }
        if failing:
            body = {"status": "not ready", "failing": failing, "checks": checks}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready", "checks": checks})

    def _snapshot(self) -> Mapping[str, object]:
        snapshot: object = self._metrics_snapshot()  # callers may be untyped
        if not isinstance(snapshot, Mapping):
            msg = f"metrics_snapshot() returned {type(snapshot).__name__}, not a mapping"
            raise TypeError(msg)
        return snapshot

    async def _metrics(self, request: web.Request) -> web.Response:
        del request
        try:
            body = exposition(self._registry)
        except Exception:
            _log.exception("metrics_snapshot_failed", service=self._service)
            return _error(500, "metrics snapshot failed")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _status(self, request: web.Request) -> web.Response:
        del request
        report = self.readiness_report()
        metrics: object
        try:
            metrics = dict(self._snapshot())
        except Exception as exc:
            _log.exception("metrics_snapshot_failed", service=self._service)
            metrics = {"error": f"metrics snapshot failed: {type(exc).__name__}"}
        body: dict[str, Any] = {
            "service": self._service,
            "version": self._version,
            "uptime_seconds": round(self._monotonic() - self._started_at, 3),
            "ready": all(ready for ready, _ in report.values()),
            "readiness": {
                name: {"ready": ready, "reason": reason} for name, (ready, reason) in report.items()
            },
            "metrics": metrics,
        }
        return web.json_response(body, dumps=_dumps)

    def _authorization_error(self, request: web.Request) -> web.Response | None:
        if self._token is None:
            return _error(403, "control disabled: the service has no control token")
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _error(401, "missing bearer token", **{"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            return _error(
                401, "invalid bearer token", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return None

    def _control_endpoint(
        self, handler: ControlHandler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            refused = self._authorization_error(request)
            if refused is not None:
                _log.warning("control_call_refused", path=request.path, status=refused.status)
                return refused
            raw = await request.read()
            body: object = None
            if raw.strip():
                try:
                    # Decode explicitly: json.loads(bytes) would also guess UTF-16 and UTF-32.
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, RecursionError) as exc:
                    why = "nested too deep" if isinstance(exc, RecursionError) else "not UTF-8 text"
                    return _error(400, f"request body is not valid JSON: {why}")
                except json.JSONDecodeError as exc:
                    return _error(
                        400,
                        f"request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}",
                    )
            call = ControlRequest(request.method, request.path, dict(request.query), body)
            try:
                result = await handler(call)
            except ControlRejectedError as rejected:
                return _error(rejected.status, rejected.message)
            except Exception:
                _log.exception("control_handler_failed", path=request.path)
                return _error(500, "control handler failed")
            _log.info("control_call_served", path=request.path, method=request.method)
            return web.json_response(
                dict(result) if result is not None else {"status": "ok"}, dumps=_dumps
            )

        return endpoint
