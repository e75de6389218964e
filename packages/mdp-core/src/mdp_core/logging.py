"""Logging conventions: structlog over the standard library, JSON lines in production.

Libraries only call :func:`get_logger`; a service entry point calls :func:`configure_logging`
once (calling it again replaces the previous configuration rather than stacking handlers).
Every record, whether it comes from structlog or from a stdlib logger in a dependency (aio-pika,
redis, websockets), goes through the same processors and is written as one JSON object per line
with ``timestamp`` (ISO 8601 UTC), ``level``, ``logger``, ``event`` and ``service``, plus any
context bound with ``structlog.contextvars.bind_contextvars(symbol=..., feed=..., queue=...)``.
Exceptions become structured ``exception`` lists, not multi-line text, so a log pipeline keeps
each record whole.

Vendor clients misbehave: the ``massive`` library attaches its own stdout handler to its
``RESTClient`` and ``WebSocketClient`` loggers *and* lets records propagate, so every line
appears twice, once in a non-JSON format. :func:`quiet_vendor_loggers` removes such handlers so
the records flow only through ours; :func:`configure_logging` calls it, and code that imports a
vendor client lazily (after configuration) should call it again after the import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, Final, Literal, TextIO

import msgspec
import structlog
import structlog.tracebacks
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "VENDOR_LOGGERS",
    "LogFormat",
    "configure_logging",
    "get_logger",
    "quiet_vendor_loggers",
]

LogFormat = Literal["auto", "json", "console"]

VENDOR_LOGGERS: tuple[str, ...] = (
    "RESTClient",  # massive.rest
    "WebSocketClient",  # massive.websocket
    "finlight-websocket-client",
    "finlight-raw-websocket-client",
)
"""Loggers that third-party clients name and sometimes equip with their own handlers."""

_JSON_ENCODER = msgspec.json.Encoder(enc_hook=repr)


class _MdpHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler installed by :func:`configure_logging` (marked so it can be replaced)."""


def _json_serializer(event: Any, **_: Any) -> str:
    """Serialize with msgspec; unknown objects (including ``Secret``) fall back to ``repr``."""
    return _JSON_ENCODER.encode(event).decode()


def _add_service(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Add ``trace_id`` and ``span_id`` (W3C hex) inside a span, to join logs to traces."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger for a service process. Idempotent.

    Args:
        service: the component name added to every record (``listener``, ``processor``...).
        level: minimum level name (``DEBUG``, ``INFO``...), case-insensitive.
        fmt: ``json`` for one JSON object per line, ``console`` for coloured human output,
            ``auto`` for console when ``stream`` is a terminal and JSON otherwise.
        stream: where records go; standard output by default (12-factor: the platform collects
            stdout).

    Raises:
        ValueError: if ``level`` is not a logging level name.
    """
    out = sys.stdout if stream is None else stream
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        msg = f"log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; it was {level!r}"
        raise ValueError(msg)
    console = fmt == "console" or (fmt == "auto" and _is_tty(out))

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_service(service),
        _add_trace_ids,
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Processor]
    if console:
        # plain_traceback: rich's and better-exceptions' formatters print local variables.
        renderer = [
            structlog.dev.ConsoleRenderer(
                colors=_is_tty(out), exception_formatter=structlog.dev.plain_traceback
            )
        ]
    else:
        renderer = [
            _DICT_TRACEBACKS,
            structlog.processors.JSONRenderer(serializer=_json_serializer),
        ]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = _MdpHandler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _MdpHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    quiet_vendor_loggers()


#: Tracebacks as data, without local variables: a frame's locals hold what a log must never show
#: (the hostile message being decoded, a token being verified, a provider key).
_DICT_TRACEBACKS: Final = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def quiet_vendor_loggers(names: Iterable[str] = VENDOR_LOGGERS) -> int:
    """Remove handlers that vendor libraries attach to their own loggers; let records propagate.

    Args:
        names: the logger names to clean; :data:`VENDOR_LOGGERS` by default.

    Returns:
        How many handlers were removed (0 when the vendor modules are not imported yet).
    """
    removed = 0
    for name in names:
        vendor = logging.getLogger(name)
        for handler in list(vendor.handlers):
            vendor.removeHandler(handler)
            removed += 1
        vendor.propagate = True
    return removed


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return the structlog logger for ``name`` (usually ``__name__``); libraries call only this."""
    return structlog.stdlib.get_logger(name)
