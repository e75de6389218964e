"""The bench simulator's tape and closed-loop saturation (``mdp_platform.bench.simulator``).

A tape moves the load generator's work before a measured phase; it must not change what is
offered or what the correctness check expects, or the bench would check a different market
from the one it sent.
"""

from __future__ import annotations

from typing import cast

import pytest

from mdp_platform.bench.simulator import _CHUNK, SimProcessConfig, _Driver, _Entry, _Tape

CONFIG = SimProcessConfig(symbols=40, seed=11, mix=("A", "T"), api_key="k", start="09:29")


def _entry(at: int, n: int) -> _Entry:
    return ("T", f"S{n}", at, b"{}")


def test_a_tape_hands_out_whole_instants_in_order_then_nothing() -> None:
    tape = _Tape()
    tape.extend([_entry(1, 0), _entry(1, 1), _entry(2, 2), _entry(2, 3), _entry(2, 4)])
    tape.extend([_entry(3, 5)])
    first = tape.take(1)
    assert [e[1] for e in first] == ["S0", "S1"]  # instant 1 is never split
    assert len(tape) == 4
    assert [e[1] for e in tape.take(2)] == ["S2", "S3", "S4"]
    assert [e[1] for e in tape.take(0)] == ["S5"]  # at least one
    assert len(tape) == 0
    assert not tape
    assert tape.take(5) == []


@pytest.mark.parametrize("after", [0, 500], ids=["ends-on-the-tape", "live-after-the-tape"])
async def test_events_served_from_a_tape_are_offered_and_checked_as_live_ones(after: int) -> None:
    taped, live = _Driver(CONFIG), _Driver(CONFIG)
    watched = frozenset({"AAA", *list(taped.market.profiles)[:5]})
    taped.watch = live.watch = watched
    taped.send(300, flush=False)  # live before the tape: the tape continues after it
    before = taped.live_sent
    reply = await taped.prepare(3 * _CHUNK)
    assert reply["events"] == len(taped.tape) >= 3 * _CHUNK
    while taped.tape:
        taped.send(700, flush=False)
    if after:
        taped.send(after, flush=False)  # live again once the tape ran out
    assert taped.tape_sent == reply["events"]
    assert taped.live_sent >= before + after
    total = taped.tape_sent + taped.live_sent

    # The live driver draws the market in the same pieces: 300, the tape's, then the rest.
    live.send(300, flush=False)
    assert live.live_sent == before
    while live.live_sent < before + taped.tape_sent:
        live.send(_CHUNK, flush=False)
    assert live.live_sent == before + taped.tape_sent
    if after:
        live.send(after, flush=False)
    assert live.live_sent == total
    assert live.tape_sent == 0
    want, got = live.final(), taped.final()
    assert got["offered"] == want["offered"]
    assert got["total"] == want["total"] == total
    assert got["finals"] == want["finals"]
    assert got["finals"]  # the check has something to compare
    got_watched = cast("list[list[object]]", got["watched"])
    want_watched = cast("list[list[object]]", want["watched"])
    assert {(s, at) for s, at, _ in got_watched} == {(s, at) for s, at, _ in want_watched}
    assert {s for s, _, _ in got_watched} <= watched
    assert got_watched
    emitted = [at for at, _ in cast("list[tuple[int, int]]", got["emission"])]
    assert emitted == sorted(emitted)


def test_window_mode_sends_only_up_to_the_allowed_count_and_never_lowers_it() -> None:
    driver = _Driver(CONFIG)
    driver.set_mode("window", 0.0)
    assert driver.room() == 0  # nothing allowed yet
    driver.set_mode("idle", 0.0)
    driver.allow(5_000)  # the bench allows first, then switches: the count carries over
    driver.set_mode("window", 0.0)
    assert driver.room() == _CHUNK
    driver.live_sent, driver.tape_sent = 3_000, 1_500
    assert driver.room() == 500
    driver.live_sent = 3_500
    assert driver.room() == 0
    driver.live_sent = 3_600  # an instant may carry a take past the count
    assert driver.room() == 0
    driver.allow(4_000)  # an older answer arriving late lowers nothing
    assert driver.pacing.limit == 5_000
    driver.allow(6_000)
    assert driver.room() == 900
    driver.set_mode("max", 0.0)
    assert driver.room() == _CHUNK  # open loop: as fast as the listener reads


async def test_the_check_folds_a_slice_at_a_time_and_the_rest_at_final() -> None:
    driver = _Driver(CONFIG)
    await driver.prepare(3 * _CHUNK)
    while driver.tape:
        driver.send(_CHUNK, flush=False)
    driver.send(100, flush=False)  # live after the tape: queued behind it, not folded first
    sends = len(driver.unchecked)
    assert sends >= 4
    assert driver.tracker.finals() == {}
    driver.check(1)
    assert len(driver.unchecked) == sends - 1
    partial = driver.tracker.finals()
    assert partial
    driver.check(2)
    assert len(driver.unchecked) == sends - 3
    final = driver.final()
    assert not driver.unchecked
    assert len(cast("dict[str, object]", final["finals"])) >= len(partial)
