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
    haa = HaltAlertsAnalyzer(resume_wait_s=30)
    run(haa, luld("ACME", at_ms(DAY, 10, 0), 17), now_ms=at_ms(DAY, 10, 0))
    assert alerts(run(haa, luld("ACME", at_ms(DAY, 10, 5), 18), now_ms=at_ms(DAY, 10, 5))) == []
    assert alerts(run(haa, now_ms=at_ms(DAY, 10, 5) + 29_000)) == []
    (resume,) = alerts(run(haa, now_ms=at_ms(DAY, 10, 5) + 30_000))
    assert (resume.kind, resume.price, resume.note) == ("resume", None, "resumed after 300 s")


def test_the_merged_halted_flag_alone_makes_a_halt_and_its_resume() -> None:
    # Another replica took the LULD event: this record only carries the merged flag.
    haa = HaltAlertsAnalyzer(resume_wait_s=0)
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
    haa = HaltAlertsAnalyzer(resume_wait_s=0)
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
