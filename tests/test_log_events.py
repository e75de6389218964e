"""One logging convention: an event name in snake case, then key-value context.

``log.info("flush_written", rows=n)``, never prose (``"flush written"``), ``%``-formatting
(``"wrote %d rows", n``) or f-strings, so that grepping the code for an event found in the logs
(or the logs for an event in the code) is exact. This scan reads every ``<logger>.<level>(...)``
call in ``packages/*/src`` and ``services/*/src`` and fails on one that breaks the rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
LEVELS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "msg"})
LOGGER_NAME = re.compile(r"^(_?(log|logger|LOG|LOGGER)|logging|\w+_(log|logger))$")
EVENT = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _receiver_is_a_logger(node: ast.expr) -> bool:
    """A name like ``log``, ``_logger``, ``self._log``, ``logging``, or ``get_logger(...)``."""
    if isinstance(node, ast.Name):
        return bool(LOGGER_NAME.match(node.id))
    if isinstance(node, ast.Attribute):
        return bool(LOGGER_NAME.match(node.attr))
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in {"get_logger", "getLogger"}
    return False


def _problem(call: ast.Call) -> str | None:
    """What is wrong with one logging call, or None."""
    if not call.args:
        return "no event name"
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return f"event is not a string literal: {ast.unparse(first)}"
    if not EVENT.match(first.value):
        return f"event {first.value!r} is not snake_case"
    if len(call.args) > 1:
        return f"positional (%-style) arguments after {first.value!r}; use key=value"
    return None


def log_problems(path: Path) -> list[tuple[int, str]]:
    """Every logging call in ``path`` that breaks the convention, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and _receiver_is_a_logger(node.func.value)
        ):
            problem = _problem(node)
            if problem is not None:
                found.append((node.lineno, problem))
    return sorted(found)


def test_the_scan_accepts_events_and_refuses_prose_percent_and_fstrings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "log.info('flush_written', rows=3)\n"
        "self._log.warning('worker_failed', exc_info=True)\n"
        "get_logger(__name__).error('parent_gone')\n"
        "log.info('flush written')\n"
        "_logger.warning('wrote %d rows', n)\n"
        "logger.error(f'bad_{x}')\n"
        "logging.info('Started')\n"
        "log.debug()\n"
        "catalog.info('Not a logger')\n"
        "board.error('not_a_logger', 1)\n"
    )
    assert [line for line, _ in log_problems(sample)] == [4, 5, 6, 7, 8]


def test_every_log_call_names_a_snake_case_event_with_key_value_context() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {problem}"
        for folder in ("packages", "services")
        for path in sorted((ROOT / folder).glob("*/src/**/*.py"))
        for line, problem in log_problems(path)
    ]
    assert offenders == [], "log an event name and key=value context:\n" + "\n".join(offenders)
