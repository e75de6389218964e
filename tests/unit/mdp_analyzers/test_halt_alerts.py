"""HaltAlertsAnalyzer: LULD halts and resumes with the band and the resume price."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mdp_analyzers.halt_alerts import HaltAlert, HaltAlertsAnalyzer
from mdp_analyzers.typing import FeedMessage, Output
from mdp_testing.conformance import AnalyzerSuite, at_ms

DAY = date(2026, 3, 4)
MS = 1_000_000


def luld(
    symbol: str, t: int, *indicators: int, halted: bool | None = None, h: float = 5.5
) -> FeedMessage:
    record: dict[str, Any] = {"ev": "LULD", "T": symbol, "h": h, "l": 4.5, "i": list(indicators)}
    record["t"] = t
    if halted is not None:
        record["halted"] = halted
    return FeedMessage(f"luld:{symbol}", json.dumps(record).encode())


def q(symbol: str, start_ms: int, price: float, open_: float | None = None) -> FeedMessage:
    record = {
        "symbol": symbol,
        "trading_day": DAY.isoformat(),
        "price": price,
        "open": open_ if open_ is not None else price,
        "start_ms": start_ms,
        "end_ms": start_ms + 1_000,
        "accumulated_volume": 1_000,
    }
    return FeedMessage(f"quote:{symbol}", json.dumps(record).encode())


def alerts(output: Output) -> list[HaltAlert]:
    assert all(w.name == "alerts:halts" for w in output.widgets)
    return [msgspec.json.decode(w.payload, type=HaltAlert) for w in output.widgets]


def run(analyzer: HaltAlertsAnalyzer, *messages: FeedMessage, now_ms: int) -> Output:
    analyzer.apply(list(messages), now_ms * MS)
    return analyzer.collect(now_ms * MS)


class TestHaltAlertsConformance(AnalyzerSuite):
    def make_analyzer(self) -> Any:
        return HaltAlertsAnalyzer()

    def sample_inputs(self) -> list[Any]:
        return [
            q("ACME", at_ms(self.day, 10, 0), 5.2),
            luld("ACME", at_ms(self.day, 10, 1), 17, halted=True),
        ]


def test_a_halt_then_a_resume_with_its_reopening_price() -> None:
    haa = HaltAlertsAnalyzer()
    halt_at, resume_at = at_ms(DAY, 10, 1), at_ms(DAY, 10, 6)
    out = run(
        haa,
        q("ACME", at_ms(DAY, 10, 0), 5.49),
        luld("ACME", halt_at, 17, halted=True),
        now_ms=halt_at,
    )
    (halt,) = alerts(out)
    assert (halt.kind, halt.high_limit, halt.low_limit, halt.price) == ("halt", 5.5, 4.5, 5.49)
    assert (halt.as_of_ms, halt.note) == (halt_at, "LULD pause; band $4.50-$5.50")
    assert out.widgets[0].identity == f"ACME|halt|{halt_at}"

    # The resume waits for its reopening print.
    assert alerts(run(haa, luld("ACME", resume_at, 18, halted=False), now_ms=resume_at)) == []
    before = q("ACME", resume_at - 2_000, 5.49)  # a late record from before the resume
    first = q("ACME", resume_at, 5.8, open_=5.75)
    out = run(haa, before, first, now_ms=resume_at + 1_000)
    (resume,) = alerts(out)
    assert (resume.kind, resume.price, resume.halted_ms) == ("resume", 5.75, 300_000)
    assert resume.as_of_ms == resume_at
    assert resume.note == "resumed at $5.75 after 300 s"
    assert out.widgets[0].identity == f"ACME|resume|{resume_at}"


def test_a_resume_without_a_print_goes_out_priceless_after_the_wait() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=30)
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    assert alerts(run(haa, luld("ACME", at_ms(DAY, 10, 5), 18), now_ms=at_ms(DAY, 10, 5))) == []
    assert alerts(run(haa, now_ms=at_ms(DAY, 10, 5) + 29_000)) == []
    (resume,) = alerts(run(haa, now_ms=at_ms(DAY, 10, 5) + 30_000))
    assert (resume.kind, resume.price, resume.note) == ("resume", None, "resumed after 300 s")


def test_the_merged_halted_flag_alone_makes_a_halt_and_its_resume() -> None:
    # Another replica took the LULD event: this record only carries the merged flag.
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    (halt,) = alerts(
        run(haa, luld("ACME", at_ms(DAY, 11, 0), halted=True), now_ms=at_ms(DAY, 11, 0))
    )
    assert halt.kind == "halt"
    (resume,) = alerts(
        run(haa, luld("ACME", at_ms(DAY, 11, 5), halted=False), now_ms=at_ms(DAY, 11, 5))
    )
    assert resume.kind == "resume"


def test_band_updates_and_repeats_raise_nothing() -> None:
    haa = HaltAlertsAnalyzer()
    band = luld("ACME", at_ms(DAY, 10, 0), halted=False)
    assert alerts(run(haa, band, band, now_ms=at_ms(DAY, 10, 0))) == []
    halt = luld("ACME", at_ms(DAY, 10, 1), 17, halted=True)
    assert len(alerts(run(haa, halt, halt, now_ms=at_ms(DAY, 10, 1)))) == 1
    older = luld("ACME", at_ms(DAY, 9, 0), 17, halted=True)
    assert alerts(run(haa, halt, older, now_ms=at_ms(DAY, 10, 2))) == []


def test_bad_records_are_counted() -> None:
    haa = HaltAlertsAnalyzer()
    run(haa, FeedMessage("luld:X", b"{"), FeedMessage("quote:X", b"[]"), now_ms=at_ms(DAY, 9, 0))
    assert sum(haa.rejected.values()) == 2


@given(st.integers(min_value=1, max_value=4), st.randoms(use_true_random=False))
def test_each_halt_and_resume_alerts_once_whatever_the_duplication(copies: int, rnd: Any) -> None:
    events = []
    for n in range(3):
        start = at_ms(DAY, 10 + n, 0)
        events.append(luld("ACME", start, 17, halted=True))
        events.append(luld("ACME", start + 300_000, 18, halted=False))
        events.append(q("ACME", start + 300_000, 5.0 + n))
    stream = [event for event in events for _ in range(rnd.randint(1, copies))]
    haa = HaltAlertsAnalyzer()
    raised: list[HaltAlert] = []
    for event in stream:
        raised += alerts(run(haa, event, now_ms=at_ms(DAY, 13, 0)))
    assert [(a.kind, a.price) for a in raised] == [
        ("halt", None),
        ("resume", 5.0),
        ("halt", 5.0),
        ("resume", 6.0),
        ("halt", 6.0),
        ("resume", 7.0),
    ]


def test_a_restart_learns_halts_from_the_snapshots_without_alerting() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    assert tuple(haa.snapshot_patterns()) == ("luld:*",)
    halted = luld("ACME", at_ms(DAY, 10, 0), 17, halted=True)
    calm = luld("BOLT", at_ms(DAY, 10, 0), halted=False)
    snapshots = {
        halted.name: halted.payload,
        calm.name: calm.payload,
        "luld:BAD": b"{",
        "quote:ACME": b"{}",
    }
    haa.restore(snapshots, at_ms(DAY, 10, 1) * MS)
    assert haa.rejected["invalid_snapshot"] == 1
    assert alerts(haa.collect(at_ms(DAY, 10, 1) * MS)) == []
    # The same record again is nothing new; the merged flag turning off is the resume.
    assert alerts(run(haa, halted, now_ms=at_ms(DAY, 10, 2))) == []
    (resume,) = alerts(
        run(haa, luld("ACME", at_ms(DAY, 10, 5), halted=False), now_ms=at_ms(DAY, 10, 5))
    )
    assert (resume.kind, resume.halted_ms) == ("resume", 300_000)


def test_names_and_the_default_wait_of_sixty_seconds() -> None:
    haa = HaltAlertsAnalyzer()
    assert (haa.name, haa.consumes) == ("halt_alerts", frozenset({"luld:*", "quote:*"}))
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    resume_at = at_ms(DAY, 10, 5)
    assert alerts(run(haa, luld("ACME", resume_at, 18), now_ms=resume_at)) == []
    assert alerts(run(haa, now_ms=resume_at + 59_999)) == []
    (resume,) = alerts(run(haa, now_ms=resume_at + 60_000))
    assert resume == HaltAlert(
        symbol="ACME",
        trading_day="2026-03-04",
        kind="resume",
        high_limit=5.5,
        low_limit=4.5,
        price=None,
        halted_ms=300_000,
        note="resumed after 300 s",
        as_of_ms=resume_at,
    )
    # Gone once raised: a later collect raises nothing more.
    assert alerts(run(haa, now_ms=resume_at + 120_000)) == []


def test_the_wait_counts_from_when_the_resume_was_seen_not_its_event_time() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=10)
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    resume_at = at_ms(DAY, 10, 5)
    seen_at = resume_at + 50_000  # the record arrives late
    assert alerts(run(haa, luld("ACME", resume_at, 18), now_ms=seen_at)) == []
    assert alerts(run(haa, now_ms=seen_at + 9_999)) == []
    (resume,) = alerts(run(haa, now_ms=seen_at + 10_000))
    assert resume.as_of_ms == resume_at


def test_a_halt_alert_in_full_with_its_trading_day_at_the_day_boundary() -> None:
    haa = HaltAlertsAnalyzer()
    before = at_ms(DAY, 4, 0) - 1  # still the previous trading day
    start = at_ms(DAY, 4, 0)
    (early,) = alerts(run(haa, luld("EARLY", before, 17), now_ms=before))
    (first,) = alerts(run(haa, luld("FIRST", start, 17, halted=True, h=0.5), now_ms=start))
    assert early.trading_day == "2026-03-03"
    assert first == HaltAlert(
        symbol="FIRST",
        trading_day="2026-03-04",
        kind="halt",
        high_limit=0.5,
        low_limit=4.5,
        price=None,
        halted_ms=None,
        note="LULD pause; band $4.50-$0.5000",
        as_of_ms=start,
    )
    # A resume's trading day is its own event time's.
    resumed = alerts(
        run(haa, luld("EARLY", start, 18), q("EARLY", start, 5.0, open_=5.1), now_ms=start)
    )
    assert [(a.kind, a.trading_day, a.price) for a in resumed] == [("resume", "2026-03-04", 5.1)]


def test_a_resume_whose_halt_was_not_seen_has_no_duration() -> None:
    haa = HaltAlertsAnalyzer()
    resume_at = at_ms(DAY, 10, 5)
    run(haa, luld("ACME", resume_at, 18), now_ms=resume_at)
    (resume,) = alerts(run(haa, q("ACME", resume_at, 5.0, open_=4.9), now_ms=resume_at))
    assert (resume.kind, resume.halted_ms, resume.note) == ("resume", None, "resumed at $4.90")


def test_the_flag_turning_off_without_a_halt_seen_is_no_resume() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    calm = luld("ACME", at_ms(DAY, 10, 0), halted=False)
    assert alerts(run(haa, calm, now_ms=at_ms(DAY, 10, 0))) == []
    assert alerts(run(haa, now_ms=at_ms(DAY, 10, 1))) == []


def test_indicators_win_over_a_lagging_flag() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    # 17 with the merged flag still off is a halt; 18 with the flag still on is the resume.
    (halt,) = alerts(
        run(haa, luld("ACME", at_ms(DAY, 10, 0), 17, halted=False), now_ms=at_ms(DAY, 10, 0))
    )
    assert halt.kind == "halt"
    (resume,) = alerts(
        run(haa, luld("ACME", at_ms(DAY, 10, 2), 18, halted=True), now_ms=at_ms(DAY, 10, 2))
    )
    assert (resume.kind, resume.halted_ms) == ("resume", 120_000)


def test_a_new_record_at_the_same_time_that_says_more_is_read() -> None:
    haa = HaltAlertsAnalyzer()
    t = at_ms(DAY, 10, 0)
    assert alerts(run(haa, luld("ACME", t, halted=False), now_ms=t)) == []
    (halt,) = alerts(run(haa, luld("ACME", t, 17, halted=False), now_ms=t))
    assert (halt.kind, halt.as_of_ms) == ("halt", t)


def test_a_second_halt_before_the_reopening_print_still_alerts_the_resume_first() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=60)
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    run(haa, luld("ACME", at_ms(DAY, 10, 5), 18), now_ms=at_ms(DAY, 10, 5))
    again = at_ms(DAY, 10, 5, 10)
    # Within the resume's wait for its reopening print: only the new halt can raise it.
    resume, halt = alerts(run(haa, luld("ACME", again, 17), now_ms=again))
    # The resume happened, without a reopening print: no price, its own time, then the halt.
    assert (resume.kind, resume.price, resume.as_of_ms, resume.halted_ms) == (
        "resume",
        None,
        at_ms(DAY, 10, 5),
        300_000,
    )
    assert (halt.kind, halt.as_of_ms) == ("halt", again)
    assert alerts(run(haa, now_ms=at_ms(DAY, 10, 20))) == []


def test_prints_during_a_halt_do_not_become_the_price_before_the_next_halt() -> None:
    haa = HaltAlertsAnalyzer()
    run(haa, q("ACME", at_ms(DAY, 9, 59), 5.0), now_ms=at_ms(DAY, 9, 59))
    (halt,) = alerts(run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0)))
    assert halt.price == 5.0
    # A stray print while halted (no pending resume): not the last traded price.
    run(haa, q("ACME", at_ms(DAY, 10, 1), 9.0), now_ms=at_ms(DAY, 10, 1))
    run(haa, luld("ACME", at_ms(DAY, 10, 5), 18), now_ms=at_ms(DAY, 10, 5))
    (resume,) = alerts(
        run(haa, q("ACME", at_ms(DAY, 10, 5), 5.2, open_=5.1), now_ms=at_ms(DAY, 10, 5))
    )
    assert resume.price == 5.1
    (again,) = alerts(run(haa, luld("ACME", at_ms(DAY, 10, 9), 17), now_ms=at_ms(DAY, 10, 9)))
    assert again.price == 5.2
    # Another symbol's prints never leak into ACME's.
    run(haa, q("BOLT", at_ms(DAY, 10, 10), 7.0), now_ms=at_ms(DAY, 10, 10))
    assert haa.rejected == {}


def test_foreign_objects_and_other_feeds_are_ignored() -> None:
    haa = HaltAlertsAnalyzer()
    halt = luld("ACME", at_ms(DAY, 10, 0), 17)
    haa.apply([object(), FeedMessage("news:latest", halt.payload), halt], at_ms(DAY, 10, 0) * MS)
    assert [a.kind for a in alerts(haa.collect(at_ms(DAY, 10, 0) * MS))] == ["halt"]
    assert sum(haa.rejected.values()) == 0


def test_restore_reads_every_snapshot_and_knows_the_indicator_or_the_flag() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    by_flag = luld("FLAG", at_ms(DAY, 10, 0), halted=True)
    by_code = luld("CODE", at_ms(DAY, 10, 1), 17)
    snapshots = {
        "quote:ACME": b"{}",  # not a LULD record: skipped, the rest still read
        "luld:BAD": b"{",
        by_flag.name: by_flag.payload,
        by_code.name: by_code.payload,
    }
    haa.restore(snapshots, at_ms(DAY, 10, 2) * MS)
    assert haa.rejected["invalid_snapshot"] == 1
    out = run(
        haa,
        luld("FLAG", at_ms(DAY, 10, 4), halted=False),
        luld("CODE", at_ms(DAY, 10, 4), halted=False),
        now_ms=at_ms(DAY, 10, 4),
    )
    assert [(a.symbol, a.kind, a.halted_ms) for a in alerts(out)] == [
        ("CODE", "resume", 180_000),
        ("FLAG", "resume", 240_000),
    ]


def test_after_a_lost_link_the_catch_up_alerts_what_changed_meanwhile() -> None:
    """A reconnect's restore learns nothing: the catch-up's records are handled as live."""
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    # Meanwhile ACME resumed and BOLT, never seen before, was halted.
    calm = luld("ACME", at_ms(DAY, 10, 1), halted=False)
    bolt = luld("BOLT", at_ms(DAY, 10, 2), 17)
    snapshots = {calm.name: calm.payload, bolt.name: bolt.payload}
    haa.restore(snapshots, at_ms(DAY, 10, 3) * MS)
    assert alerts(haa.collect(at_ms(DAY, 10, 3) * MS)) == []
    out = alerts(run(haa, calm, bolt, now_ms=at_ms(DAY, 10, 3)))
    assert [(a.symbol, a.kind, a.as_of_ms, a.halted_ms) for a in out] == [
        ("ACME", "resume", at_ms(DAY, 10, 1), 60_000),
        ("BOLT", "halt", at_ms(DAY, 10, 2), None),
    ]
    # A halt already known, handed over again, raises nothing.
    assert alerts(run(haa, bolt, now_ms=at_ms(DAY, 10, 4))) == []


def test_while_halted_a_record_without_a_resume_signal_resumes_nothing() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    band = luld("ACME", at_ms(DAY, 10, 1), h=5.6)  # no indicator, no flag
    flag_on = luld("ACME", at_ms(DAY, 10, 2), halted=True)
    older_resume = luld("ACME", at_ms(DAY, 9, 59), 18)  # late, from before the halt
    assert alerts(run(haa, band, flag_on, older_resume, now_ms=at_ms(DAY, 10, 3))) == []
    (resume,) = alerts(run(haa, luld("ACME", at_ms(DAY, 10, 4), 18), now_ms=at_ms(DAY, 10, 4)))
    assert (resume.halted_ms, resume.high_limit) == (240_000, 5.5)


def test_a_batch_goes_out_by_event_time_not_by_symbol() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    t = at_ms(DAY, 10, 0)
    out = run(haa, luld("ZETA", t, 17), luld("ALFA", t + 1, 17), now_ms=t + 1)
    assert [w.identity for w in out.widgets] == [f"ZETA|halt|{t}", f"ALFA|halt|{t + 1}"]
    out = run(haa, luld("ALFA", t + 60_001, 18), luld("ZETA", t + 60_000, 18), now_ms=t + 60_001)
    assert [w.identity for w in out.widgets] == [
        f"ZETA|resume|{t + 60_000}",
        f"ALFA|resume|{t + 60_001}",
    ]


def test_restore_at_start_knows_each_halt_and_counts_each_bad_snapshot() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    t = at_ms(DAY, 10, 0)
    merged = luld("ACME", t, halted=True)  # the merged flag says halted
    calm = luld("BOLT", t - 60_000, halted=False)
    coded = luld("CODE", t, 17)
    snapshots = {
        calm.name: calm.payload,
        "luld:BAD1": b"{",
        "luld:BAD2": b"[",
        merged.name: merged.payload,
        coded.name: coded.payload,
    }
    haa.restore(snapshots, (t + 1) * MS)
    assert haa.rejected["invalid_snapshot"] == 2
    # The catch-up hands the same records over: nothing new.
    assert alerts(run(haa, calm, merged, coded, now_ms=t + 1)) == []
    resumes = [luld(s, t + 60_000, halted=False) for s in ("ACME", "BOLT", "CODE")]
    out = alerts(run(haa, *resumes, now_ms=t + 60_000))
    assert [(a.symbol, a.halted_ms) for a in out] == [("ACME", 60_000), ("CODE", 60_000)]


def test_a_bad_record_in_a_batch_costs_only_itself() -> None:
    haa = HaltAlertsAnalyzer()
    t = at_ms(DAY, 10, 0)
    huge = luld("HUGE", 10**15, 17)  # beyond what the calendar can place
    spaced = FeedMessage("luld:AC", huge.payload.replace(b'"HUGE"', b'"A C"'))
    out = alerts(run(haa, huge, spaced, luld("ACME", t, 17), now_ms=t))
    assert [(a.symbol, a.kind) for a in out] == [("ACME", "halt")]
    assert haa.rejected["invalid_json"] == 2


def test_a_record_of_a_day_over_is_stale_once_the_day_rolled() -> None:
    """A catch-up after 04:00 replays yesterday's records: none of them is alerted again."""
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    yesterday = date(2026, 3, 3)
    halt = luld("ACME", at_ms(yesterday, 15, 0), 17)
    resume = luld("ACME", at_ms(yesterday, 15, 5), 18)
    assert alerts(run(haa, halt, resume, now_ms=at_ms(DAY, 9, 0))) == []
    assert haa.rejected["stale_day"] == 2


def test_a_pause_the_close_ended_is_forgotten_the_next_day() -> None:
    """No resume is sent for a pause the close ended: the next day raises no resume for it,
    and a new halt that day is alerted with its own duration."""
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    yesterday = date(2026, 3, 3)
    (halt,) = alerts(
        run(haa, luld("ACME", at_ms(yesterday, 15, 55), 17), now_ms=at_ms(yesterday, 15, 56))
    )
    assert halt.kind == "halt"
    # The first band update of the day says "not halted": yesterday's pause is over, quietly.
    morning = luld("ACME", at_ms(DAY, 9, 30), halted=False)
    assert alerts(run(haa, morning, now_ms=at_ms(DAY, 9, 30))) == []
    (today,) = alerts(run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0)))
    assert (today.kind, today.trading_day, today.as_of_ms) == (
        "halt",
        "2026-03-04",
        at_ms(DAY, 10, 0),
    )
    (resume,) = alerts(run(haa, luld("ACME", at_ms(DAY, 10, 5), 18), now_ms=at_ms(DAY, 10, 5)))
    assert (resume.kind, resume.halted_ms) == ("resume", 300_000)


def test_a_pause_ends_at_the_next_trading_days_0400_not_before() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    day_start = at_ms(DAY, 4, 0)
    run(haa, luld("ACME", day_start - 1, 17), now_ms=day_start - 1)  # 03:59:59.999: 03-03's
    (resume,) = alerts(run(haa, luld("ACME", day_start - 1, 18), now_ms=day_start - 1))
    assert resume.kind == "resume"
    run(haa, luld("BOLT", day_start - 2, 17), now_ms=day_start - 2)
    assert alerts(run(haa, luld("BOLT", day_start, halted=False), now_ms=day_start)) == []


def test_a_restart_the_next_morning_forgets_yesterdays_pauses() -> None:
    haa = HaltAlertsAnalyzer(resume_wait_seconds=0)
    yesterday = luld("ACME", at_ms(date(2026, 3, 3), 15, 55), 17, halted=True)
    today = luld("BOLT", at_ms(DAY, 9, 40), 17, halted=True)
    haa.restore(
        {yesterday.name: yesterday.payload, today.name: today.payload}, at_ms(DAY, 9, 45) * MS
    )
    # BOLT's halt is known (its resume has a duration); ACME's is not (a halt alerts anew).
    (resume,) = alerts(run(haa, luld("BOLT", at_ms(DAY, 9, 50), 18), now_ms=at_ms(DAY, 9, 50)))
    assert (resume.symbol, resume.halted_ms) == ("BOLT", 600_000)
    (halt,) = alerts(run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0)))
    assert (halt.symbol, halt.kind) == ("ACME", "halt")
