"""The SCP's /metrics: typed families that match the documented catalogue, counted per route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mdp_scp import ControlPlane
from mdp_scp.metrics import FAMILIES, ScpMetrics

ClientFactory = Callable[[ControlPlane], Awaitable[TestClient[web.Request, web.Application]]]


def test_the_registry_serves_exactly_the_documented_families() -> None:
    served = {(m.name, m.type, m.documentation) for m in ScpMetrics("1").registry.collect()}
    assert served == {(f"mdp_scp_{f.name}", f.kind, f.help) for f in FAMILIES}


async def test_metrics_count_requests_by_route_pattern_and_logins_by_outcome(
    plane_factory: Callable[..., ControlPlane],
    client_factory: ClientFactory,
    login: Callable[..., Awaitable[int]],
) -> None:
    client = await client_factory(plane_factory())
    assert (await client.get("/static/nope.js")).status == 404
    assert await login(client, "admin", "wrong-password") == 401
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["mdp_scp_http_requests"].samples
        if s.name.endswith("_total")
    }
    # The route pattern, never the raw path (no unbounded label values).
    assert requests[("/static/{name}", "404")] == 1
    assert ("/static/nope.js", "404") not in requests
    logins = {
        s.labels["outcome"]: s.value
        for s in families["mdp_scp_logins"].samples
        if s.name.endswith("_total")
    }
    assert logins == {"failed": 1}
    assert families["mdp_scp_http_request_seconds"].type == "histogram"


async def test_metrics_are_not_served_through_the_public_proxy(
    plane_factory: Callable[..., ControlPlane], client_factory: ClientFactory
) -> None:
    client = await client_factory(plane_factory())
    for header in ("X-Forwarded-For", "Forwarded"):
        response = await client.get("/metrics", headers={header: "203.0.113.9"})
        assert response.status == 404
    assert (await client.get("/metrics")).status == 200
