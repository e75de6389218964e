"""Logs join traces (trace and span ids inside a span) and the operator names the service."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from mdp_core.logging import configure_logging, get_logger
from mdp_core.telemetry import _resource_attributes


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_inside_a_span_carry_its_trace_and_span_ids() -> None:
    out = io.StringIO()
    configure_logging("processor", fmt="json", stream=out)
    log = get_logger("mdp.test")
    tracer = TracerProvider().get_tracer("test")  # not installed globally: context is enough
    log.info("before")
    with tracer.start_as_current_span("outer") as span:
        log.info("inside")
        logging.getLogger("vendor").warning("stdlib inside")
        context = span.get_span_context()
    log.info("after")
    records = {r["event"]: r for r in map(json.loads, out.getvalue().splitlines())}
    for event in ("inside", "stdlib inside"):
        assert records[event]["trace_id"] == format(context.trace_id, "032x")
        assert records[event]["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in records["before"]
    assert "span_id" not in records["after"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"service.name": "mdp-listener", "service.version": "1.0"}),
        ({"OTEL_SERVICE_NAME": "mdl-eu"}, {"service.version": "1.0"}),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=a,service.version=2"}, {}),
        ({"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod"},
         {"service.name": "mdp-listener", "service.version": "1.0"}),
    ],
)  # fmt: skip
def test_the_operator_s_service_name_and_version_win(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    assert _resource_attributes("mdp-listener", "1.0", environ) == expected


def test_a_resource_built_from_them_keeps_otel_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.resources import Resource

    monkeypatch.setenv("OTEL_SERVICE_NAME", "mdl-eu")
    variables = {"OTEL_SERVICE_NAME": "mdl-eu"}
    resource = Resource.create(_resource_attributes("mdp-listener", "1.0", variables))
    assert resource.attributes["service.name"] == "mdl-eu"
    assert resource.attributes["service.version"] == "1.0"
