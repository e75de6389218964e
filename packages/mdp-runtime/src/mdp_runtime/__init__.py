"""Service runtime for mdp components: lifecycle, health and metrics endpoints, heartbeats.

Every service process is built the same way from these pieces: :func:`run_service` owns the
signals and the exit code, :class:`HealthServer` answers the probes and serves metrics,
status and authenticated control routes, and :class:`Heartbeat` keeps a TTL key in Redis
that says the instance is alive.
"""

from importlib.metadata import version as _version

from mdp_runtime.client_address import TrustedProxies, address_bucket
from mdp_runtime.collector import settle_heap
from mdp_runtime.command_line import parse_service_arguments, settings_help
from mdp_runtime.health import (
    ControlHandler,
    ControlRejectedError,
    ControlRequest,
    HealthServer,
    ReadinessCheck,
)
from mdp_runtime.heartbeat import (
    Heartbeat,
    HeartbeatClock,
    HeartbeatStore,
    component_heartbeat,
    instance_name,
)
from mdp_runtime.lifecycle import (
    AuthError,
    ConfigError,
    ExitCode,
    ServiceExit,
    UnavailableError,
    run_service,
)
from mdp_runtime.metrics import Family, metric_prefix
from mdp_runtime.runtime_control import RuntimeControl
from mdp_runtime.stream import Broker, StreamingComponent, serve_stream

__version__ = _version("mdp-runtime")

__all__ = [
    "AuthError",
    "Broker",
    "ConfigError",
    "ControlHandler",
    "ControlRejectedError",
    "ControlRequest",
    "ExitCode",
    "Family",
    "HealthServer",
    "Heartbeat",
    "HeartbeatClock",
    "HeartbeatStore",
    "ReadinessCheck",
    "RuntimeControl",
    "ServiceExit",
    "StreamingComponent",
    "TrustedProxies",
    "UnavailableError",
    "__version__",
    "address_bucket",
    "component_heartbeat",
    "instance_name",
    "metric_prefix",
    "parse_service_arguments",
    "run_service",
    "serve_stream",
    "settings_help",
    "settle_heap",
]
