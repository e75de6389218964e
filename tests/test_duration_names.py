"""One duration naming convention for settings (docs/dev/design.md, "Conventions").

A duration is in seconds and says so: the field ends in ``_seconds`` and its variable in
``_SECONDS``. ``_ms``/``_MS`` is kept for an integer the code hands on in milliseconds (the AMQP
``x-message-ttl`` of ``MDP_MDQ_TTL_MS``), and ``_days`` for a count of calendar or trading days
(a day is not 86,400 seconds across a DST change or a market holiday). No other unit (``_s``,
minutes, hours) and no field whose unit differs from its variable's.
"""

from __future__ import annotations

import re
import typing

import pytest

from mdp_core.settings import CommonSettings, describe
from mdp_platform.reference import settings_classes

UNIT = re.compile(r"_(seconds|ms|s|sec|secs|minutes|mins|min|hours|hrs|days)$")
ALLOWED = frozenset({"seconds", "ms", "days"})


def _unit(name: str) -> str | None:
    found = UNIT.search(name.lower())
    return found.group(1) if found else None


@pytest.mark.parametrize(
    ("name", "unit"),
    [("flush_interval_seconds", "seconds"), ("ttl_ms", "ms"), ("MDP_X_WAIT_S", "s"),
     ("news_window_minutes", "minutes"), ("batch_messages", None), ("rate_per_second", None)],
)  # fmt: skip
def test_the_unit_is_read_from_the_suffix(name: str, unit: str | None) -> None:
    assert _unit(name) == unit


def test_every_duration_setting_is_in_seconds_or_integer_milliseconds_and_says_so() -> None:
    offenders: list[str] = []
    for cls in {CommonSettings, *settings_classes()}:
        hints = typing.get_type_hints(cls)
        for doc in describe(cls):
            field_unit, env_unit = _unit(doc.name), _unit(doc.env)
            where = f"{cls.__qualname__}.{doc.name} ({doc.env})"
            if field_unit != env_unit:
                offenders.append(f"{where}: field and variable name different units")
            elif field_unit is not None and field_unit not in ALLOWED:
                offenders.append(f"{where}: durations are _seconds (or integer _ms, or _days)")
            elif field_unit == "ms" and hints[doc.name] is not int:
                offenders.append(f"{where}: milliseconds are integers")
    assert offenders == [], "\n".join(offenders)
