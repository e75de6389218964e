import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from mdp_core.logging import configure_logging, get_logger, quiet_vendor_loggers
from mdp_core.settings import Secret


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_conventional_fields() -> None:
    out = io.StringIO()
    configure_logging("listener", fmt="json", stream=out)
    get_logger("mdp.test").info("frame received", events=3, key=Secret("k"))
    [record] = lines(out)
    assert record["event"] == "frame received"
    assert record["level"] == "info"
    assert record["logger"] == "mdp.test"
    assert record["service"] == "listener"
    assert record["events"] == 3
    assert record["key"] == "Secret('***')"
    assert record["timestamp"].endswith("Z")


def test_context_variables_are_merged() -> None:
    out = io.StringIO()
    configure_logging("processor", fmt="json", stream=out)
    structlog.contextvars.bind_contextvars(symbol="AAPL", feed="massive", queue="trades")
    get_logger("mdp.test").warning("slow")
    [record] = lines(out)
    assert (record["symbol"], record["feed"], record["queue"]) == ("AAPL", "massive", "trades")


def test_stdlib_records_use_the_same_format() -> None:
    out = io.StringIO()
    configure_logging("processor", fmt="json", stream=out)
    logging.getLogger("aio_pika").warning("channel %s closed", 7, extra={"reason": "x"})
    [record] = lines(out)
    assert record["event"] == "channel 7 closed"
    assert record["logger"] == "aio_pika"
    assert record["service"] == "processor"
    assert record["reason"] == "x"


def test_exceptions_become_structured() -> None:
    out = io.StringIO()
    configure_logging("processor", fmt="json", stream=out)
    try:
        raise ValueError("bad frame")
    except ValueError:
        get_logger("mdp.test").exception("decode failed")
    [record] = lines(out)
    assert record["level"] == "error"
    [exc] = record["exception"]
    assert exc["exc_type"] == "ValueError"
    assert exc["exc_value"] == "bad frame"


def test_level_filters_and_is_validated() -> None:
    out = io.StringIO()
    configure_logging("x", level="warning", fmt="json", stream=out)
    log = get_logger("mdp.test")
    log.info("hidden")
    log.error("shown")
    assert [r["event"] for r in lines(out)] == ["shown"]
    with pytest.raises(ValueError, match="log level must be one of"):
        configure_logging("x", level="LOUD", stream=out)


def test_configure_is_idempotent() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("x", fmt="json", stream=first)
    configure_logging("x", fmt="json", stream=second)
    logging.getLogger("other").warning("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_auto_format_uses_console_on_a_tty_and_json_elsewhere() -> None:
    tty = TtyStream()
    configure_logging("x", fmt="auto", stream=tty)
    get_logger("mdp.test").info("hello", n=1)
    text = tty.getvalue()
    assert "hello" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    pipe = io.StringIO()
    configure_logging("x", fmt="auto", stream=pipe)
    get_logger("mdp.test").info("hello")
    assert lines(pipe)[0]["event"] == "hello"


def test_console_format_on_a_pipe_is_plain_text() -> None:
    out = io.StringIO()
    configure_logging("x", fmt="console", stream=out)
    get_logger("mdp.test").info("hello")
    assert "hello" in out.getvalue()
    assert "\x1b[" not in out.getvalue()


def test_vendor_handlers_are_removed_and_records_propagate() -> None:
    vendor = logging.getLogger("WebSocketClient")
    own_output = io.StringIO()
    vendor.addHandler(logging.StreamHandler(own_output))
    vendor.propagate = False
    out = io.StringIO()
    configure_logging("listener", fmt="json", stream=out)
    vendor.warning("reconnecting")
    assert own_output.getvalue() == ""
    assert vendor.propagate
    assert lines(out)[0]["logger"] == "WebSocketClient"
    vendor.addHandler(logging.StreamHandler(own_output))
    assert quiet_vendor_loggers(["WebSocketClient"]) == 1
    assert quiet_vendor_loggers(["WebSocketClient"]) == 0


def _fail_with_a_secret_in_scope(secret: str) -> None:
    token = secret + "-derived"  # a local the traceback must not show
    raise ValueError("verification failed " + str(len(token)))


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_never_carry_local_variables(fmt: str) -> None:
    out = io.StringIO()
    configure_logging("scp", fmt=fmt, stream=out)  # type: ignore[arg-type]  # a literal
    try:
        _fail_with_a_secret_in_scope("-".join(["hunter2", "provider", "key"])[::-1])
    except ValueError:
        get_logger("mdp.test").exception("check failed")
    text = out.getvalue()
    assert "verification failed" in text
    assert "_fail_with_a_secret_in_scope" in text  # the traceback itself is there
    assert "2retnuh" not in text  # the secret, reversed so the source line does not show it
