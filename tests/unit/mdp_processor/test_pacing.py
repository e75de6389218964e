"""Flush pacing: the next flush's start follows the last flush's cost, within two bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.state import MemoryState
from mdp_core.settings import load
from mdp_processor.pacing import FlushPacing
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.settings import ProcessorSettings
from mdp_queues import MemoryBus, Topology
from mdp_testing.widgets import MemoryWidgets


def test_a_cheap_flush_keeps_the_interval() -> None:
    pacing = FlushPacing(interval_seconds=0.01, max_interval_seconds=0.025, busy_fraction=0.2)
    assert pacing.next_interval(0.0) == 0.01
    assert pacing.next_interval(0.002) == 0.01  # 0.002 / 0.2 is exactly the interval


def test_a_costly_flush_stretches_the_pace_to_its_busy_share() -> None:
    pacing = FlushPacing(interval_seconds=0.01, max_interval_seconds=0.025, busy_fraction=0.2)
    assert pacing.next_interval(0.003) == pytest.approx(0.015)
    assert pacing.next_interval(0.004) == pytest.approx(0.02)
    assert pacing.next_interval(0.005) == pytest.approx(0.025)


def test_the_ceiling_holds_and_a_flush_longer_than_it_is_followed_at_once() -> None:
    pacing = FlushPacing(interval_seconds=0.01, max_interval_seconds=0.025, busy_fraction=0.2)
    assert pacing.next_interval(0.006) == 0.025
    # The next flush starts next_interval after this one started: already past.
    slow = 0.1
    assert pacing.next_interval(slow) == 0.025
    assert pacing.next_interval(slow) < slow


def test_a_ceiling_below_the_interval_is_the_interval() -> None:
    pacing = FlushPacing(interval_seconds=0.1, max_interval_seconds=0.025, busy_fraction=0.2)
    assert pacing.next_interval(0.0) == 0.1
    assert pacing.next_interval(1.0) == 0.1


def test_a_busy_fraction_of_one_paces_by_the_interval_alone() -> None:
    pacing = FlushPacing(interval_seconds=0.01, max_interval_seconds=0.025, busy_fraction=1.0)
    assert pacing.next_interval(0.004) == 0.01
    # Longer than the interval: the next flush is due at once, as without pacing.
    assert pacing.next_interval(0.015) == 0.015


def test_saturation_lifts_the_ceiling_to_its_own() -> None:
    pacing = FlushPacing(0.01, 0.025, 0.2, saturated_max_interval_seconds=0.25)
    assert pacing.next_interval(0.006) == 0.025
    assert pacing.next_interval(0.006, saturated=True) == pytest.approx(0.03)
    assert pacing.next_interval(0.05, saturated=True) == pytest.approx(0.25)  # exactly at it
    assert pacing.next_interval(0.06, saturated=True) == 0.25
    # The floor and the busy share are the same as without saturation.
    assert pacing.next_interval(0.0, saturated=True) == 0.01
    assert pacing.next_interval(0.003, saturated=True) == pytest.approx(0.015)


def test_a_saturated_ceiling_below_the_others_turns_the_mode_off() -> None:
    below_ceiling = FlushPacing(0.01, 0.025, 0.2, saturated_max_interval_seconds=0.02)
    assert below_ceiling.next_interval(1.0, saturated=True) == 0.025
    below_interval = FlushPacing(0.1, 0.025, 0.2, saturated_max_interval_seconds=0.05)
    assert below_interval.next_interval(1.0, saturated=True) == 0.1


@pytest.mark.parametrize(
    ("interval", "fraction", "message"),
    [
        (0.0, 0.2, "interval_seconds must be above 0"),
        (-0.01, 0.2, "interval_seconds must be above 0"),
        (math.nan, 0.2, "interval_seconds must be above 0"),
        (0.01, 0.0, "busy_fraction must be in"),
        (0.01, 1.01, "busy_fraction must be in"),
        (0.01, math.nan, "busy_fraction must be in"),
    ],
)
def test_nonsense_is_refused(interval: float, fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlushPacing(interval_seconds=interval, busy_fraction=fraction)


@given(
    interval=st.floats(0.001, 1.0),
    ceiling=st.floats(0.001, 1.0),
    saturated_ceiling=st.floats(0.001, 2.0),
    fraction=st.floats(0.01, 1.0),
    first=st.floats(0.0, 10.0),
    second=st.floats(0.0, 10.0),
)
def test_the_interval_is_bounded_and_never_shrinks_as_flushes_cost_more(
    *,
    interval: float,
    ceiling: float,
    saturated_ceiling: float,
    fraction: float,
    first: float,
    second: float,
) -> None:
    pacing = FlushPacing(interval, ceiling, fraction, saturated_ceiling)
    low, high = sorted((first, second))
    assert interval <= pacing.next_interval(low) <= max(interval, ceiling)
    assert pacing.next_interval(low) <= pacing.next_interval(high)
    saturated = pacing.next_interval(low, saturated=True)
    # Saturation only ever lengthens the pace, and never past the highest bound.
    assert pacing.next_interval(low) <= saturated <= max(interval, ceiling, saturated_ceiling)
    assert saturated <= pacing.next_interval(high, saturated=True)


def test_the_defaults_agree_between_the_config_the_settings_and_the_pacing() -> None:
    config, settings, pacing = ProcessorConfig(), load(ProcessorSettings, {}), FlushPacing()
    expected = (
        pacing.interval_seconds,
        pacing.max_interval_seconds,
        pacing.busy_fraction,
        pacing.saturated_max_interval_seconds,
    )
    assert (
        config.flush_interval_seconds,
        config.flush_max_interval_seconds,
        config.flush_busy_fraction,
        config.flush_saturated_max_interval_seconds,
    ) == expected
    assert (
        settings.flush_interval_seconds,
        settings.flush_max_interval_seconds,
        settings.flush_busy_fraction,
        settings.flush_saturated_max_interval_seconds,
    ) == expected
    assert config.saturation_seconds == settings.saturation_seconds == 1.0
    assert pacing.saturated_max_interval_seconds == 0.25


def test_the_settings_read_the_pacing_and_refuse_a_share_above_one() -> None:
    settings = load(
        ProcessorSettings,
        {"MDP_FLUSH_MAX_INTERVAL_SECONDS": "0.05", "MDP_FLUSH_BUSY_FRACTION": "0.5"},
    )
    assert (settings.flush_max_interval_seconds, settings.flush_busy_fraction) == (0.05, 0.5)
    with pytest.raises(ValueError, match="MDP_FLUSH_BUSY_FRACTION"):
        load(ProcessorSettings, {"MDP_FLUSH_BUSY_FRACTION": "1.5"})


def test_the_settings_read_the_saturated_pacing_and_refuse_nonsense() -> None:
    settings = load(
        ProcessorSettings,
        {"MDP_FLUSH_SATURATED_MAX_INTERVAL_SECONDS": "0.5", "MDP_SATURATION_SECONDS": "2"},
    )
    assert (settings.flush_saturated_max_interval_seconds, settings.saturation_seconds) == (
        0.5,
        2.0,
    )
    with pytest.raises(ValueError, match="MDP_SATURATION_SECONDS"):
        load(ProcessorSettings, {"MDP_SATURATION_SECONDS": "0.01"})
    with pytest.raises(ValueError, match="MDP_FLUSH_SATURATED_MAX_INTERVAL_SECONDS"):
        load(ProcessorSettings, {"MDP_FLUSH_SATURATED_MAX_INTERVAL_SECONDS": "0"})


def test_a_processor_refuses_a_nonsense_pacing_when_built() -> None:
    with pytest.raises(ValueError, match="busy_fraction"):
        Processor(
            MemoryBus(Topology()).consumer(),
            [],
            state=MemoryState(),
            widgets=MemoryWidgets(),
            config=ProcessorConfig(flush_busy_fraction=0.0),
        )
