"""The one backoff policy: growth, cap, jitter range, limits and the reset after a success."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.settings import CommonSettings, SettingsError, load


class Fixed:
    """A random source that always returns the same draw."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


policies = st.builds(
    lambda initial, extra, jitter, multiplier: BackoffPolicy(
        initial_seconds=initial,
        max_seconds=initial + extra,
        jitter=jitter,
        multiplier=multiplier,
    ),
    st.floats(0.0, 100.0),
    st.floats(0.0, 1000.0),
    st.floats(0.0, 1.0),
    st.floats(1.0, 10.0),
)


def test_doubles_from_initial_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial_seconds=0.5, max_seconds=3.0)
    assert [policy.capped(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_no_jitter_means_exact_delays() -> None:
    backoff = Backoff(BackoffPolicy(initial_seconds=1.0, max_seconds=60.0), Fixed(0.99))
    assert [backoff.wait() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]


def test_jitter_takes_off_at_most_its_fraction() -> None:
    policy = BackoffPolicy(initial_seconds=2.0, max_seconds=2.0, jitter=0.25)
    assert policy.delay(1, Fixed(0.0)) == 2.0
    assert policy.delay(1, Fixed(0.5)) == 1.75
    # the largest draw of random() is just below 1: the delay stays just above the floor
    assert policy.delay(1, Fixed(0.999999)) == pytest.approx(1.5, abs=1e-5)


def test_full_jitter_spans_zero_to_the_delay() -> None:
    policy = BackoffPolicy(initial_seconds=4.0, max_seconds=4.0, jitter=1.0)
    assert policy.delay(1, Fixed(0.0)) == 4.0
    assert policy.delay(1, Fixed(0.75)) == 1.0


@given(policies, st.integers(1, 10_000), st.floats(0.0, 1.0, exclude_max=True))
def test_every_delay_is_within_its_jitter_band_and_the_cap(
    policy: BackoffPolicy, attempt: int, draw: float
) -> None:
    capped = policy.capped(attempt)
    delay = policy.delay(attempt, Fixed(draw))
    assert capped <= policy.max_seconds
    assert capped * (1.0 - policy.jitter) - 1e-9 <= delay <= capped


@given(policies, st.integers(1, 200))
def test_capped_delays_never_shrink(policy: BackoffPolicy, attempt: int) -> None:
    assert policy.capped(attempt) <= policy.capped(attempt + 1)


@given(policies, st.integers(1, 5_000))
def test_huge_attempt_counts_do_not_overflow(policy: BackoffPolicy, attempt: int) -> None:
    assert policy.capped(attempt * 1_000) <= policy.max_seconds


@given(policies, st.integers(0, 30), st.integers(0, 2**32))
def test_reset_after_success_starts_again_from_initial(
    policy: BackoffPolicy, failures: int, seed: int
) -> None:
    backoff = Backoff(policy, random.Random(seed))
    for _ in range(failures):
        backoff.wait()
    backoff.reset()
    assert backoff.attempt == 0
    delay = backoff.wait()
    assert policy.initial_seconds * (1 - policy.jitter) - 1e-9 <= delay <= policy.initial_seconds
    assert backoff.attempt == 1


def test_seeded_sources_give_the_same_delays() -> None:
    policy = BackoffPolicy(initial_seconds=1.0, max_seconds=30.0, jitter=0.5)
    one = Backoff(policy, random.Random(7))
    two = Backoff(policy, random.Random(7))
    assert [one.wait() for _ in range(8)] == [two.wait() for _ in range(8)]


def test_max_attempts_gives_up_after_that_many_failures() -> None:
    backoff = Backoff(BackoffPolicy(1.0, 10.0, max_attempts=3), Fixed(0.0))
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, None, None]
    used_up = backoff.exhausted  # (a local: asserting the property would narrow it for mypy)
    assert used_up
    with pytest.raises(RuntimeError, match="max_attempts"):
        backoff.wait()
    backoff.reset()
    assert not backoff.exhausted
    assert backoff.next_delay() == 1.0


def test_a_stable_attempt_resets_the_backoff_at_the_boundary() -> None:
    clock = Ticks()
    policy = BackoffPolicy(1.0, 60.0, stable_after_seconds=30.0)
    backoff = Backoff(policy, Fixed(0.0), clock)
    for expected in (1.0, 2.0, 4.0):
        backoff.started()
        clock.advance(29.999)  # just short of stable: still failing
        assert backoff.next_delay() == expected
    backoff.started()
    clock.advance(30.0)  # exactly stable: a success
    stable = backoff.stable
    assert stable
    assert backoff.next_delay() == 1.0
    # a failure without a started attempt never counts as stable
    clock.advance(100.0)
    assert not backoff.stable
    assert backoff.next_delay() == 2.0


def test_lasted_measures_from_the_start_of_the_attempt() -> None:
    clock = Ticks()
    backoff = Backoff(BackoffPolicy(1.0, 2.0), Fixed(0.0), clock)
    assert backoff.lasted() == 0.0
    backoff.started()
    clock.advance(2.5)
    assert backoff.lasted() == 2.5


def test_stable_after_needs_a_clock() -> None:
    with pytest.raises(ValueError, match="clock"):
        Backoff(BackoffPolicy(1.0, 2.0, stable_after_seconds=1.0), Fixed(0.0))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"initial_seconds": -1.0, "max_seconds": 1.0}, "initial_seconds"),
        ({"initial_seconds": 2.0, "max_seconds": 1.0}, "max_seconds"),
        ({"initial_seconds": 1.0, "max_seconds": 1.0, "jitter": 1.5}, "jitter"),
        ({"initial_seconds": 1.0, "max_seconds": 1.0, "jitter": -0.1}, "jitter"),
        ({"initial_seconds": 1.0, "max_seconds": 1.0, "multiplier": 0.5}, "multiplier"),
        ({"initial_seconds": 1.0, "max_seconds": 1.0, "max_attempts": 0}, "max_attempts"),
        ({"initial_seconds": float("nan"), "max_seconds": 1.0}, "initial_seconds"),
    ],
)
def test_unusable_policies_are_refused(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        BackoffPolicy(1.0, 2.0).capped(0)


def test_the_edges_of_the_policy() -> None:
    assert BackoffPolicy(0.0, 5.0).capped(10) == 0.0  # no delay grows from zero
    assert BackoffPolicy(1.0, 5.0, multiplier=1.0).capped(10) == 1.0  # constant delay
    assert BackoffPolicy(1.0, 1.0).capped(3) == 1.0  # cap equal to the start
    assert BackoffPolicy(1.0, 4.0).capped(3) == 4.0  # lands exactly on the cap


def test_from_settings_lowers_a_start_above_the_cap() -> None:
    policy = BackoffPolicy.from_settings(10.0, 2.0, 0.5, stable_after_seconds=3.0)
    assert policy == BackoffPolicy(2.0, 2.0, jitter=0.5, stable_after_seconds=3.0)
    assert BackoffPolicy.from_settings(0.1, 5.0, 0.0) == BackoffPolicy(0.1, 5.0)


def test_the_retry_settings_make_the_policy() -> None:
    environ = {
        "MDP_RETRY_INITIAL_SECONDS": "0.2",
        "MDP_RETRY_MAX_SECONDS": "3",
        "MDP_RETRY_JITTER": "0.25",
    }
    assert load(CommonSettings, environ).retry_backoff == BackoffPolicy(0.2, 3.0, jitter=0.25)
    assert load(CommonSettings, {}).retry_backoff == BackoffPolicy(0.1, 5.0, jitter=0.5)
    with pytest.raises(SettingsError, match="MDP_RETRY_JITTER"):
        load(CommonSettings, {"MDP_RETRY_JITTER": "1.5"})
