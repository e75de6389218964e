"""The end-of-run correctness check of ``mdp bench``: published boards against the recomputation.

Reads the board documents from the widget cache once each was composed after the drain, ranks
the simulator's final per-symbol state the plain way (:mod:`mdp_platform.bench.board`) and,
for every symbol that differs, reads its published quote record to say why: older than its
last event (a lost update) or without a previous close (reference data never arrived). Every
``range:{symbol}`` document is compared with the session ranges recomputed from every bar sent
and its price with the close of the symbol's latest bar.
A drain that did not complete fails every check: nothing read before the pipeline caught up
proves anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import DEFAULT_BOARD_SIZE
from mdp_cache.keys import FEED_DAILY_RANGE, FEED_QUOTE
from mdp_platform.bench.board import (
    BOARD_NAMES,
    BoardCheck,
    SymbolFinal,
    check_board,
    check_ranges,
    expected_boards,
    expected_prices,
    expected_ranges,
)
from mdp_platform.bench.clients import BOARD_FEEDS
from mdp_platform.bench.config import WDC_DB, BenchConfig

__all__ = ["check_boards", "nothing_checked", "published_rows", "read_boards", "read_ranges"]

_MGET_CHUNK: Final = 1_000


def nothing_checked(
    offered_total: int, checks: Sequence[BoardCheck], mix: Sequence[str]
) -> str | None:
    """Why a run whose checks all passed proved nothing, or None when it proved something.

    A run in which the feed never reached the listener (a component not ready under load, a
    refused connection) offers nothing; its boards and ranges are then empty on both sides
    and every check passes. That is no pass.
    """
    if offered_total <= 0:
        return "the simulator offered no events (no feed connection from the listener?)"
    if "A" in mix and not any(c.expected_rows for c in checks if c.board == "ranges"):
        return "no symbol had a bar, so no range was checked"
    return None


async def read_boards(config: BenchConfig, after_ms: int) -> dict[str, dict[str, Any]]:
    """The three board documents, once each was composed after ``after_ms`` (bounded wait)."""
    redis = Redis.from_url(config.redis(WDC_DB))
    boards: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            raw = await redis.mget(list(BOARD_FEEDS))
            boards = {}
            for feed, value in zip(BOARD_FEEDS, raw, strict=True):
                document = msgspec.json.decode(value) if value else None
                if isinstance(document, dict):
                    boards[feed.split(":", 1)[1]] = document
            fresh = [int(doc.get("as_of_ms", 0)) > after_ms for doc in boards.values()]
            if len(boards) == len(BOARD_FEEDS) and all(fresh):
                break
            await asyncio.sleep(0.25)
    finally:
        await redis.aclose()
    return boards


async def read_ranges(config: BenchConfig) -> dict[str, dict[str, Any]]:
    """Every ``range:{symbol}`` document in the widget cache, by symbol."""
    redis = Redis.from_url(config.redis(WDC_DB))
    found: dict[str, dict[str, Any]] = {}
    try:
        names = [name async for name in redis.scan_iter(match=FEED_DAILY_RANGE.pattern, count=1000)]
        for start in range(0, len(names), _MGET_CHUNK):
            chunk = names[start : start + _MGET_CHUNK]
            for value in await redis.mget(chunk):
                document = msgspec.json.decode(value) if value else None
                if isinstance(document, dict) and isinstance(document.get("symbol"), str):
                    found[document["symbol"]] = document
    finally:
        await redis.aclose()
    return found


class _PublishedRow(msgspec.Struct):
    end_ms: int = 0
    prev_close: float | None = None
    accumulated_volume: int | None = None


async def check_boards(
    config: BenchConfig,
    boards: Mapping[str, Mapping[str, Any]],
    ranges: Mapping[str, Mapping[str, Any]],
    final: Mapping[str, Any],
    *,
    stale: int,
    drain_waiting: str | None = None,
) -> tuple[list[BoardCheck], dict[str, Any]]:
    """Check every board and the ranges; a difference is excused only by stale drops.

    Returns the verdicts (the boards, then ``ranges``) and a diagnosis of the differing
    symbols: their published quote rows say whether the row is older than the symbol's last
    event (a lost update) or lacks the previous close (reference data never arrived).
    """
    finals = msgspec.convert(final["finals"], dict[str, SymbolFinal])
    prev_close = msgspec.convert(final["prev_close"], dict[str, float])
    expected = expected_boards(finals, prev_close, int(final["open_ms"]))
    inputs: dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]]]] = {}
    checks: dict[str, BoardCheck] = {}
    for board in BOARD_NAMES:
        document = boards.get(board)
        if document is None:
            checks[board] = BoardCheck(board, False, 0, 0, (), (), (), 0, "no board in Redis")
            continue
        if document.get("trading_day") != final["trading_day"]:
            detail = f"board is for {document.get('trading_day')}, market is {final['trading_day']}"
            checks[board] = BoardCheck(board, False, 0, 0, (), (), (), 0, detail)
            continue
        metric = str(document.get("metric", ""))
        rows = document.get("rows") or []
        actual = [(str(r["symbol"]), float(r[metric])) for r in rows if r.get(metric) is not None]
        want = [] if document.get("status") == "pre_open" else expected[board]
        inputs[board] = (want, actual)
        checks[board] = check_board(board, want, actual, size=DEFAULT_BOARD_SIZE)
    differing = sorted(
        {s for c in checks.values() for s in (*c.wrong_score, *c.missing, *c.unexpected)}
    )[:1000]
    published = await published_rows(config, differing)
    older = {s for s in differing if s in finals and published[s].end_ms < finals[s].end_ms}
    # A quote record that holds the final volume while the board does not: the board is
    # behind its own rows (composed before the last writes, or a composition that was lost).
    board_behind = sorted(
        s
        for s in differing
        if s in finals and published[s].accumulated_volume == finals[s].accumulated_volume
    )
    # A symbol without any quote record (every bar of it dropped) is not a reference problem.
    unpublished = sorted(s for s in differing if published[s].end_ms == 0)
    no_reference = sorted(
        s for s in differing if published[s].end_ms and published[s].prev_close is None
    )
    # Without an official open, gainers measure against the first regular bar's open: if a
    # stale drop took that bar, the platform's open is a later bar's, whatever the row's age.
    no_official_open = {s for s in differing if s in finals and finals[s].official_open is None}
    if stale > 0:
        for board, (want, actual) in inputs.items():
            explainable = older | no_official_open if board == "top_gainers" else older
            checks[board] = check_board(
                board, want, actual, size=DEFAULT_BOARD_SIZE, explainable=explainable
            )
    # A stale drop may have removed any bar, so with drops any symbol's range may be narrower
    # (never wider) than the recomputation; without drops every figure must be equal.
    want_ranges = expected_ranges(finals)
    day = str(final["trading_day"])
    want_prices = expected_prices(finals)
    checks["ranges"] = check_ranges(want_ranges, ranges, trading_day=day, prices=want_prices)
    if stale > 0:
        # A symbol without a document is excused only if the processor never wrote its quote
        # record either (every bar of it dropped); a record without a range is a scanner bug.
        unranged = await published_rows(config, list(checks["ranges"].missing))
        hidden = {s for s, row in unranged.items() if row.end_ms == 0}
        checks["ranges"] = check_ranges(
            want_ranges,
            ranges,
            trading_day=day,
            prices=want_prices,
            explainable=finals.keys(),
            hidden=hidden,
        )
    if drain_waiting is not None:
        for name, verdict in checks.items():
            checks[name] = dataclasses.replace(
                verdict, ok=False, detail=f"{verdict.detail}; drain incomplete: {drain_waiting}"
            )
    diagnosis = {
        "differing_symbols": len(differing),
        "board_as_of_ms": {board: doc.get("as_of_ms") for board, doc in boards.items()},
        "quote_final_board_not": board_behind[:50],
        "row_older_than_last_event": sorted(older)[:50],
        "row_without_previous_close": no_reference[:50],
        "rows_without_previous_close": len(no_reference),
        "without_quote_record": unpublished[:50],
        "gainers_without_official_open": sorted(no_official_open)[:50],
    }
    ranges_check = checks["ranges"]
    diagnosis["ranges_wrong"] = list(ranges_check.wrong_score[:50])
    diagnosis["ranges_missing"] = list(ranges_check.missing[:50])
    return [checks[board] for board in (*BOARD_NAMES, "ranges")], diagnosis


async def published_rows(config: BenchConfig, symbols: Sequence[str]) -> dict[str, _PublishedRow]:
    """The published quote record (event time, previous close) of each symbol."""
    rows = {symbol: _PublishedRow() for symbol in symbols}
    if not symbols:
        return rows
    redis = Redis.from_url(config.redis(WDC_DB))
    try:
        values = await redis.mget([FEED_QUOTE.name(symbol=s) for s in symbols])
    finally:
        await redis.aclose()
    decoder = msgspec.json.Decoder(_PublishedRow)
    for symbol, value in zip(symbols, values, strict=True):
        if value:
            with contextlib.suppress(msgspec.DecodeError):
                rows[symbol] = decoder.decode(value)
    return rows
