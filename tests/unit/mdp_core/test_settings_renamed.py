"""Renamed settings: the old variable still works for one release, converted, and warns once."""

from __future__ import annotations

import warnings

import pytest

from mdp_core import settings as settings_module
from mdp_core.settings import Renamed, SettingsError, describe, load, setting, settings_class


@settings_class
class Paced:
    interval_seconds: float = setting(
        env="MDP_T_INTERVAL_SECONDS",
        default=0.01,
        min=0.001,
        renamed_from=[Renamed("MDP_T_INTERVAL_MS", unit="milliseconds", scale=0.001)],
        doc="How often.",
    )
    window_seconds: float = setting(
        env="MDP_T_WINDOW_SECONDS",
        default=60.0,
        renamed_from=[Renamed("MDP_T_WINDOW_MINUTES", unit="minutes", scale=60.0)],
        doc="How long.",
    )


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a new process as far as the once-per-process warning goes."""
    monkeypatch.setattr(settings_module, "_WARNED", set())


def test_an_old_variable_is_read_in_its_own_unit_and_warns() -> None:
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        loaded = load(Paced, environ={"MDP_T_INTERVAL_MS": "25", "MDP_T_WINDOW_MINUTES": "30"})
    assert loaded.interval_seconds == pytest.approx(0.025)
    assert loaded.window_seconds == 1800.0
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "MDP_T_INTERVAL_MS is deprecated, use MDP_T_INTERVAL_SECONDS (the new one is in seconds, "
        "the old in milliseconds); still read until the next minor release",
        "MDP_T_WINDOW_MINUTES is deprecated, use MDP_T_WINDOW_SECONDS (the new one is in "
        "seconds, the old in minutes); still read until the next minor release",
    ]
    assert all(w.filename == __file__ for w in caught), "the warning points at the caller"


def test_the_warning_is_given_once_per_process_even_when_filters_hide_deprecations() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", DeprecationWarning)  # Python's default outside __main__
        first = load(Paced, environ={"MDP_T_INTERVAL_MS": "20"})
        second = load(Paced, environ={"MDP_T_INTERVAL_MS": "30"})
    assert [w.category for w in caught] == [DeprecationWarning]
    assert first.interval_seconds == pytest.approx(0.02)
    assert second.interval_seconds == pytest.approx(0.03)


def test_the_new_name_wins_and_the_warning_says_the_old_one_is_ignored() -> None:
    environ = {"MDP_T_INTERVAL_SECONDS": "0.5", "MDP_T_INTERVAL_MS": "25"}
    with pytest.warns(DeprecationWarning, match="ignored because MDP_T_INTERVAL_SECONDS is set"):
        loaded = load(Paced, environ=environ)
    assert loaded.interval_seconds == 0.5


def test_without_the_old_name_nothing_warns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(Paced, environ={"MDP_T_INTERVAL_SECONDS": "0.5"}).interval_seconds == 0.5
        assert load(Paced, environ={}).interval_seconds == 0.01


def test_a_bad_or_out_of_range_old_value_is_reported_under_the_old_name() -> None:
    with (
        pytest.warns(DeprecationWarning, match="MDP_T_INTERVAL_MS"),
        pytest.raises(SettingsError) as bad,
    ):
        load(Paced, environ={"MDP_T_INTERVAL_MS": "soon"})
    assert str(bad.value) == (
        "MDP_T_INTERVAL_MS must be a number >= 0.001 (as MDP_T_INTERVAL_SECONDS, after "
        "conversion); it was 'soon'"
    )
    settings_module._WARNED.clear()
    with (
        pytest.warns(DeprecationWarning, match="MDP_T_INTERVAL_MS"),
        pytest.raises(SettingsError, match="MDP_T_INTERVAL_MS"),
    ):
        load(Paced, environ={"MDP_T_INTERVAL_MS": "0.5"})  # 0.0005 s, below the bound


def test_a_scale_on_a_field_that_is_not_a_float_is_refused() -> None:
    @settings_class
    class Wrong:
        count: int = setting(
            env="MDP_T_COUNT", default=1, renamed_from=[Renamed("MDP_T_N", scale=2)], doc="N."
        )

    with (
        pytest.warns(DeprecationWarning, match="MDP_T_N"),
        pytest.raises(TypeError, match="float setting"),
    ):
        load(Wrong, environ={"MDP_T_N": "3"})


def test_the_reference_names_the_old_variable() -> None:
    (interval, window) = describe(Paced)
    assert interval.doc == (
        "How often. Replaces `MDP_T_INTERVAL_MS`, in milliseconds, which is still read (with a "
        "deprecation warning) until the next minor release."
    )
    assert "`MDP_T_WINDOW_MINUTES`, in minutes" in window.doc


def test_the_renamed_platform_settings_still_read_their_old_names() -> None:
    from mdp_processor.settings import ProcessorSettings
    from mdp_scanner.settings import ScannerSettings

    with pytest.warns(DeprecationWarning, match="MDP_FLUSH_INTERVAL_MS is deprecated"):
        processor = load(ProcessorSettings, environ={"MDP_FLUSH_INTERVAL_MS": "25"})
    assert processor.flush_interval_seconds == pytest.approx(0.025)
    with pytest.warns(DeprecationWarning, match="MDP_SCANNER_NEWS_WINDOW_MINUTES is deprecated"):
        scanner = load(ScannerSettings, environ={"MDP_SCANNER_NEWS_WINDOW_MINUTES": "10"})
    assert scanner.news_window_seconds == 600.0
    assert load(ProcessorSettings, environ={}).flush_interval_seconds == 0.01
    assert load(ScannerSettings, environ={}).news_window_seconds == 1800.0
