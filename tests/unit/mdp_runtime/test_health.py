from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mdp_runtime import (
    ControlRejectedError,
    ControlRequest,
    Family,
    HealthServer,
    ReadinessCheck,
)

TOKEN = "s3cret-token"


class Figures:
    """Mutable inputs for a server under test."""

    def __init__(self) -> None:
        self.snapshot: dict[str, object] = {"events": {"decoded": 5}, "feed": "delayed"}
        self.now = 100.0
        self.calls: list[ControlRequest] = []

    def metrics(self) -> Mapping[str, object]:
        return self.snapshot

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def figures() -> Figures:
    return Figures()


def _server(
    figures: Figures,
    readiness: dict[str, ReadinessCheck] | None = None,
    token: str | None = TOKEN,
) -> HealthServer:
    return HealthServer(
        "127.0.0.1",
        0,
        service="listener",
        version="1.2.3",
        metrics_snapshot=figures.metrics,
        readiness=readiness if readiness is not None else {},
        control_token=token,
        monotonic=figures.monotonic,
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json(content_type=None)


async def test_livez_answers_ok_on_the_bound_loopback_port(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    async with _server(figures) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        async with http.get(f"{server.url}/livez") as response:
            assert response.status == 200
            assert await _json(response) == {"status": "ok"}


async def test_the_port_is_unknown_before_start(figures: Figures) -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = _server(figures).port


async def test_the_socket_is_released_on_stop(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    server = _server(figures)
    await server.start()
    url = server.url
    await server.stop()
    await server.stop()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(f"{url}/livez")


async def test_readyz_is_200_when_every_check_passes(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    readiness: dict[str, ReadinessCheck] = {"queue": lambda: True, "feed": lambda: (True, "live")}
    async with _server(figures, readiness) as server, http.get(f"{server.url}/readyz") as resp:
        assert resp.status == 200
        assert await _json(resp) == {
            "status": "ready",
            "checks": {
                "queue": {"ready": True, "reason": "ok"},
                "feed": {"ready": True, "reason": "live"},
            },
        }


async def test_readyz_is_503_naming_each_failing_check_and_reason(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    def broken() -> bool:
        raise ConnectionError("redis down")

    readiness: dict[str, ReadinessCheck] = {
        "queue": lambda: True,
        "feed": lambda: (False, "auth_failed"),
        "cache": lambda: False,
        "broken": broken,
    }
    async with _server(figures, readiness) as server, http.get(f"{server.url}/readyz") as resp:
        assert resp.status == 503
        body = await _json(resp)
    assert body["status"] == "not ready"
    assert body["failing"] == {
        "feed": "auth_failed",
        "cache": "not ready",
        "broken": "check raised ConnectionError: redis down",
    }


async def test_readyz_follows_checks_added_later_and_stopping(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    readiness: dict[str, ReadinessCheck] = {}
    async with _server(figures, readiness) as server:
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 200
        state = {"connected": False}
        readiness["feed"] = lambda: state["connected"]
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 503
        state["connected"] = True
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 200
        server.mark_stopping()
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            assert (await _json(response))["failing"] == {
                "stopping": "the service is shutting down"
            }


async def test_metrics_serve_the_catalogue_typed_under_the_service_prefix(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    figures.snapshot = {"events": {"decoded": 5}, "queue": {"md.trades": 2}, "feed": "x"}
    families = (
        Family("events_decoded", "counter", "Events decoded.", "events.decoded"),
        Family("depth", "gauge", "Messages waiting.", "queue", ("queue",)),
    )
    server = HealthServer(
        "127.0.0.1",
        0,
        service="listener",
        version="1.2.3",
        metrics_snapshot=figures.metrics,
        readiness={},
        metric_families=families,
    )
    async with server, http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()
    parsed = {family.name: family for family in text_string_to_metric_families(text)}
    assert {name: family.type for name, family in parsed.items()} == {
        "mdp_listener_build_info": "gauge",
        "mdp_listener_events_decoded": "counter",
        "mdp_listener_depth": "gauge",
    }
    assert [(s.name, s.labels, s.value) for s in parsed["mdp_listener_events_decoded"].samples] == [
        ("mdp_listener_events_decoded_total", {}, 5.0)
    ]
    assert [(s.labels, s.value) for s in parsed["mdp_listener_depth"].samples] == [
        ({"queue": "md.trades"}, 2.0)
    ]
    assert parsed["mdp_listener_build_info"].samples[0].labels == {"version": "1.2.3"}
    assert "feed" not in text


async def test_metrics_report_a_broken_snapshot_as_500(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    def broken() -> Mapping[str, object]:
        raise RuntimeError("boom")

    server = HealthServer(
        "127.0.0.1", 0, service="s", version="1", metrics_snapshot=broken, readiness={}
    )
    async with server, http.get(f"{server.url}/metrics") as response:
        assert response.status == 500
        assert await _json(response) == {"error": "metrics snapshot failed"}


async def test_status_reports_service_uptime_readiness_and_metrics(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    readiness: dict[str, ReadinessCheck] = {"feed": lambda: (False, "connecting")}
    async with _server(figures, readiness) as server:
        figures.now += 42.5
        async with http.get(f"{server.url}/status") as response:
            assert response.status == 200
            body = await _json(response)
    assert body == {
        "service": "listener",
        "version": "1.2.3",
        "uptime_seconds": 42.5,
        "ready": False,
        "readiness": {"feed": {"ready": False, "reason": "connecting"}},
        "metrics": {"events": {"decoded": 5}, "feed": "delayed"},
    }


# ------------------------------------------------------------------------------ control


def _recording_server(figures: Figures, token: str | None = TOKEN) -> HealthServer:
    async def subscribe(request: ControlRequest) -> Mapping[str, object]:
        figures.calls.append(request)
        if request.body == {"symbols": []}:
            raise ControlRejectedError("symbols must not be empty", status=422)
        if request.body == "explode":
            raise RuntimeError("handler bug")
        return {"accepted": request.body}

    async def restart(request: ControlRequest) -> None:
        figures.calls.append(request)

    server = _server(figures, token=token)
    server.add_control("POST", "/subscriptions", subscribe)
    server.add_control("GET", "/control/restart", restart)
    return server


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_control_calls_reach_the_handler_with_the_decoded_body(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    async with _recording_server(figures) as server:
        async with http.post(
            f"{server.url}/control/subscriptions?feed=delayed",
            json={"symbols": ["AAPL"]},
            headers=_auth(),
        ) as response:
            assert response.status == 200
            assert await _json(response) == {"accepted": {"symbols": ["AAPL"]}}
        async with http.get(f"{server.url}/control/restart", headers=_auth()) as response:
            assert response.status == 200
            assert await _json(response) == {"status": "ok"}
    assert figures.calls == [
        ControlRequest(
            "POST", "/control/subscriptions", {"feed": "delayed"}, {"symbols": ["AAPL"]}
        ),
        ControlRequest("GET", "/control/restart", {}, None),
    ]


async def test_control_is_disabled_without_a_token(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    async with (
        _recording_server(figures, token=None) as server,
        http.post(
            f"{server.url}/control/subscriptions", json={"symbols": ["A"]}, headers=_auth()
        ) as response,
    ):
        assert response.status == 403
        assert "control disabled" in (await _json(response))["error"]
    assert figures.calls == []


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, "missing bearer token"),
        ({"Authorization": "Bearer "}, "missing bearer token"),
        ({"Authorization": "Bearer wrong-token"}, "invalid bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
    ],
)
async def test_control_needs_the_right_bearer_token(
    figures: Figures, http: aiohttp.ClientSession, headers: dict[str, str], error: str
) -> None:
    async with (
        _recording_server(figures) as server,
        http.post(f"{server.url}/control/subscriptions", json={}, headers=headers) as response,
    ):
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert await _json(response) == {"error": error}
    assert figures.calls == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "request body is not valid JSON: Expecting property name"),
        (b'{"a": 1', "request body is not valid JSON: Expecting ',' delimiter"),
        (b"\xff\xfe", "request body is not valid JSON: not UTF-8 text"),
        (b"[" * 100_000, "request body is not valid JSON: nested too deep"),
    ],
)
async def test_a_bad_json_body_gets_400_with_a_specific_message(
    figures: Figures, http: aiohttp.ClientSession, body: bytes, error: str
) -> None:
    async with (
        _recording_server(figures) as server,
        http.post(
            f"{server.url}/control/subscriptions",
            data=body,
            headers={**_auth(), "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 400
        assert (await _json(response))["error"].startswith(error)
    assert figures.calls == []


async def test_handler_rejections_and_failures_map_to_statuses(
    figures: Figures, http: aiohttp.ClientSession
) -> None:
    url_path = "/control/subscriptions"
    async with _recording_server(figures) as server:
        async with http.post(server.url + url_path, json={"symbols": []}, headers=_auth()) as r:
            assert r.status == 422
            assert await _json(r) == {"error": "symbols must not be empty"}
        async with http.post(server.url + url_path, json="explode", headers=_auth()) as r:
            assert r.status == 500
            assert await _json(r) == {"error": "control handler failed"}
        async with http.get(server.url + url_path, headers=_auth()) as r:
            assert r.status == 405


async def test_control_routes_cannot_be_added_after_start(figures: Figures) -> None:
    async def handler(request: ControlRequest) -> None:
        del request

    async with _server(figures) as server:
        with pytest.raises(RuntimeError, match="before start"):
            server.add_control("POST", "/late", handler)


def test_an_empty_control_token_is_refused(figures: Figures) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        _server(figures, token="  ")
