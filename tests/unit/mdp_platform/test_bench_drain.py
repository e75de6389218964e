"""The bench's drain waits for accounts that close, and measures the longest board gap."""

from __future__ import annotations

from mdp_platform.bench.drain import (
    BARRIER_REJECTION,
    listener_waiting,
    processor_waiting,
    scanner_waiting,
    settled,
)
from mdp_platform.bench.stats import longest_gap_ms

LISTENER = {
    "counters.events_in.total": 100.0,
    "queue.published_events.A": 60.0,
    "queue.published_events.T": 40.0,
    "upstream.pending_events": 0.0,
}
PROCESSOR = {
    "events_A": 55.0,
    "events_T": 40.0,
    "stale_dropped": 5.0,
    "bad_events": 0.0,
    "flushed_events": 95.0,
    "last_flush_events": 0.0,
    "reference_pending": 0.0,
}


def test_the_listener_is_done_when_it_read_and_published_every_offered_event() -> None:
    assert listener_waiting(LISTENER, 100) is None
    assert listener_waiting(LISTENER, 120) == "listener read 100 of 120 offered events"
    behind = {**LISTENER, "queue.published_events.T": 30.0}
    assert listener_waiting(behind, 100) == "listener published 90 of 100 events read"


def test_the_processor_is_done_when_every_event_is_accounted_flushed_and_referenced() -> None:
    assert processor_waiting(PROCESSOR, 100.0) is None
    assert processor_waiting({**PROCESSOR, "stale_dropped": 0.0}, 100.0) == (
        "processor accounted for 95 of 100 published events"
    )
    assert processor_waiting({**PROCESSOR, "flushed_events": 90.0}, 100.0) == (
        "processor flushed 90 of 95 applied events"
    )
    assert processor_waiting({**PROCESSOR, "reference_pending": 3.0}, 100.0) == (
        "processor waits for 3 reference lookups"
    )


def test_events_the_broker_expired_unread_are_accounted_for_the_processor() -> None:
    unread = {**PROCESSOR, "stale_dropped": 0.0}  # 95 applied of 100: 5 expired in the broker
    assert processor_waiting(unread, 100.0, expired=5.0) is None
    assert processor_waiting(unread, 100.0, expired=4.0) == (
        "processor accounted for 99 of 100 published events"
    )


def test_the_scanner_is_done_once_it_saw_the_barrier_and_wrote_everything_before_it() -> None:
    scanner = {"messages_total": 10.0, "processed_total": 10.0, BARRIER_REJECTION: 1.0}
    assert scanner_waiting(scanner, 0.0) is None
    assert scanner_waiting(scanner, 1.0) == "scanner has not seen the drain barrier"
    assert scanner_waiting({**scanner, "processed_total": 9.0}, 0.0) == (
        "scanner wrote 9 of 10 quote records"
    )


def test_longest_gap_counts_the_window_edges_and_the_worst_stream() -> None:
    ms = 1_000_000
    steady = [100 * ms, 1_100 * ms, 2_100 * ms, 3_100 * ms]
    frozen = [100 * ms, 2_600 * ms]  # 2.5 s without an update
    assert longest_gap_ms([steady], 0, 3_500 * ms) == 1_000.0
    assert longest_gap_ms([steady, frozen], 0, 3_500 * ms) == 2_500.0
    # A stream that went silent is measured up to the end of the window.
    assert longest_gap_ms([[100 * ms]], 0, 1_600 * ms) == 1_500.0
    # Arrivals outside the window do not count.
    assert longest_gap_ms([steady], 1_000 * ms, 2_000 * ms) == 900.0
    assert longest_gap_ms([], 0, ms) is None


def test_settled_events_are_those_flushed_or_lost_by_count() -> None:
    listener = {**LISTENER, "queue.dropped_events.T": 3.0}
    processor = {**PROCESSOR, "bad_events": 2.0}
    # 95 flushed + 5 stale + 2 bad + 7 expired in the broker + 3 the listener dropped.
    assert settled(listener, processor, 7.0) == 112.0
    # Consumed is not settled: events applied and not yet flushed still count as backlog.
    assert settled(LISTENER, {**PROCESSOR, "flushed_events": 50.0}) == 55.0
    # No reading of the processors is no answer, never "nothing settled".
    assert settled(LISTENER, {}) is None
