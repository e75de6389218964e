"""The health page's rows: states in words, uptime, freshness, rates from consecutive beats."""

from __future__ import annotations

from mdp_scp.health_view import HISTORY_SECONDS, HealthView
from mdp_scp.heartbeats import ComponentHealth


def beat(
    sent: float, total: float, *, service: str = "listener", status: str = "streaming",
    stale: bool = False, key: str = "mdp:heartbeat:listener:a", **figures: object,
) -> ComponentHealth:  # fmt: skip
    return ComponentHealth(
        key=key, service=service, instance=key.rsplit(":", 1)[-1], version="1.0",
        status=status, age_seconds=0.5, stale=stale, sent_seconds=sent, started_seconds=1_000.0,
        figures={"events_received": total, **figures},
    )  # fmt: skip


def test_rates_come_from_consecutive_beats_and_a_reset_never_goes_negative() -> None:
    view = HealthView()
    assert view.rows([beat(2_000.0, 100)], 2_000.5)[0]["rate_per_second"] is None
    row = view.rows([beat(2_005.0, 600)], 2_005.5)[0]
    assert (row["rate_per_second"], row["rate_unit"]) == (100.0, "events/s")
    row = view.rows([beat(2_010.0, 50)], 2_010.5)[0]  # restarted: totals began again
    assert row["rate_per_second"] == 0.0
    assert row["sparkline"] == [100.0, 0.0]
    # The same beat read twice adds no point.
    assert view.rows([beat(2_010.0, 50)], 2_011.0)[0]["sparkline"] == [100.0, 0.0]


def test_history_is_bounded_in_time_and_forgotten_with_the_instance() -> None:
    view = HealthView()
    for step in range(0, 700, 5):
        rows = view.rows([beat(3_000.0 + step, step * 10)], 3_000.0 + step)
    assert len(rows[0]["sparkline"]) == HISTORY_SECONDS // 5  # type: ignore[arg-type]
    view.rows([], 4_000.0)
    assert view.rows([beat(4_001.0, 5)], 4_001.0)[0]["sparkline"] == []


def test_states_read_in_words_with_uptime_and_freshness() -> None:
    view = HealthView()
    stopped, stale, live, processor = view.rows(
        [
            beat(2_000.0, 1, status="idle", key="mdp:heartbeat:listener:s"),
            beat(1_900.0, 1, status="running", stale=True, key="mdp:heartbeat:listener:t"),
            beat(2_000.0, 1, key="mdp:heartbeat:listener:u", last_frame_ms=1_999_250),
            beat(2_000.0, 1, service="processor", status="running",
                 key="mdp:heartbeat:processor:p", lag_event_p99_seconds=0.25),
        ],
        2_000.0,
    )  # fmt: skip
    assert [stopped["state"], stale["state"], live["state"]] == ["stopped", "stale", "streaming"]
    assert live["uptime_seconds"] == 1_000
    assert live["freshness_seconds"] == 0.75
    assert processor["freshness_seconds"] == 0.25
    assert stopped["freshness_seconds"] is None
