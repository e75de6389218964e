"""The simulator process of ``mdp bench`` (``python -m mdp_platform.bench.simulator CONFIG_JSON``).

It serves the synthetic market on the Massive websocket and REST servers and paces it as the
benchmark asks, phase by phase, over a line protocol (one JSON object per line):

* stdin ``{"op": "mode", "mode": "idle" | "rate" | "max", "rate": 10000}``: switch pacing
  (``max``: generate the next chunk only once the listener has read the previous one);
* stdin ``{"op": "stats"}``: reply with the events offered so far, by type;
* stdin ``{"op": "watch", "symbols": [...]}``: from now on, note when each event of these
  symbols (the ones the benchmark's clients follow) was emitted, for exact lags;
* stdin ``{"op": "final"}``: stop streaming and reply with the per-symbol final state for the
  leaderboard check, the previous closes, the event-time-to-wall-time map and the watched
  symbols' emissions; then exit.

Running in its own process keeps the market's CPU apart from the benchmark's clients, and its
own counters say exactly what was sent, so nothing needs to be recorded event by event.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import time as wall_time
from datetime import timedelta
from typing import Final

import msgspec

from mdp_platform.bench.board import BoardTracker
from mdp_sim.faults import Faults
from mdp_sim.market import Market, event_time_ms
from mdp_sim.massive_rest import MassiveRestConfig, MassiveRestServer
from mdp_sim.massive_ws import MassiveWsConfig, MassiveWsServer
from mdp_sim.scenario import ScenarioConfig

__all__ = ["SimProcessConfig", "main", "mix_kinds"]

_CHUNK: Final = 2_000
_TICK: Final = 0.005
_MAX_POINTS: Final = 500_000
_NS_PER_MS: Final = 1_000_000
_encode = msgspec.json.Encoder().encode


class SimProcessConfig(msgspec.Struct, frozen=True):
    """What the benchmark tells its simulator process."""

    symbols: int
    seed: int
    mix: tuple[str, ...]
    api_key: str
    start: str = "10:00"


class _Command(msgspec.Struct, frozen=True):
    op: str
    mode: str = "idle"
    rate: float = 0.0
    symbols: tuple[str, ...] = ()


def mix_kinds(mix: tuple[str, ...]) -> frozenset[str]:
    """Wire event codes streamed for a mix: aggregates bring ``AM`` and ``LULD`` along."""
    kinds: set[str] = set()
    for item in mix:
        if item == "A":
            kinds |= {"A", "AM", "LULD"}
        else:
            kinds.add(item)
    return frozenset(kinds)


@dataclass(slots=True)
class _Pacing:
    mode: str = "idle"
    rate: float = 0.0
    origin: float = 0.0
    sent: int = 0


class _Driver:
    def __init__(self, config: SimProcessConfig) -> None:
        hour, minute = (int(part) for part in config.start.split(":"))
        self.market = Market(
            ScenarioConfig(
                seed=config.seed,
                symbols=config.symbols,
                start=wall_time(hour, minute),
                quotes="Q" in config.mix,
                news_per_hour=0.0,
            )
        )
        self.kinds = mix_kinds(config.mix)
        keys = frozenset({config.api_key})
        faults = Faults()
        # The benchmark measures the pipeline; a lagging listener should show up as lag, not
        # as a kicked connection that would void the correctness check.
        faults.massive.slow_consumer_bytes = 512 * 1024 * 1024
        self.massive = MassiveWsServer(MassiveWsConfig(keys=keys, seed=config.seed), faults)
        self.rest = MassiveRestServer(MassiveRestConfig(keys=keys), self.market, faults)
        schedule = self.market.calendar.schedule(self.market.trading_day)
        self.open_ms = 0 if schedule is None else schedule.regular_open_ns // _NS_PER_MS
        self.tracker = (
            BoardTracker(open_ms=0)
            if schedule is None
            else BoardTracker(
                open_ms=self.open_ms,
                close_ms=schedule.regular_close_ns // _NS_PER_MS,
                day_start_ms=schedule.day_start_ns // _NS_PER_MS,
                after_end_ms=schedule.extended_close_ns // _NS_PER_MS,
            )
        )
        # The daily history of every symbol is built on its first request; building it for
        # 10,000 symbols takes seconds of CPU, and inside the first grouped-daily request it
        # would stall this process's feed (a real vendor has its history ready). Build it now.
        self.market.grouped_daily(self.market.trading_day - timedelta(days=1))
        self.offered: Counter[str] = Counter()
        self.points: list[tuple[int, int]] = []
        self.watch: frozenset[str] = frozenset()
        #: (symbol, event time ms) of a watched symbol's event -> wall ns of its first emission.
        self.watched: dict[tuple[str, int], int] = {}
        self.pacing = _Pacing()
        self.changed = asyncio.Event()

    def emit(self, events: list[dict[str, object]], *, flush: bool) -> int:
        kinds = self.kinds
        wanted = [e for e in events if e.get("ev") in kinds]
        if not wanted:
            return 0
        self.tracker.add(wanted)
        self.offered.update(str(e["ev"]) for e in wanted)
        self.massive.publish(wanted, flush=flush)
        last = event_time_ms(wanted[-1])
        now = time.time_ns()
        if (not self.points or last > self.points[-1][0]) and len(self.points) < _MAX_POINTS:
            self.points.append((last, now))
        if self.watch and len(self.watched) < _MAX_POINTS:
            for event in wanted:
                symbol = event.get("sym", event.get("T"))
                if symbol in self.watch:
                    self.watched.setdefault((str(symbol), event_time_ms(event)), now)
        return len(wanted)

    def set_mode(self, mode: str, rate: float) -> None:
        self.pacing = _Pacing(mode=mode, rate=rate, origin=time.monotonic())
        self.changed.set()

    async def run(self) -> None:
        while True:
            pacing = self.pacing
            if pacing.mode == "idle" or not self.massive.has_subscribers:
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self.changed.wait()
                continue
            if pacing.mode == "max":
                self.emit(self.market.take(_CHUNK).events, flush=True)
                await self.massive.wait_drained()
                await asyncio.sleep(0)
                continue
            due = int((time.monotonic() - pacing.origin) * pacing.rate) - pacing.sent
            if due <= 0:
                await asyncio.sleep(_TICK)
                continue
            sent = self.emit(self.market.take(min(due, _CHUNK)).events, flush=False)
            pacing.sent += max(1, sent)
            await asyncio.sleep(0)

    def stats(self) -> dict[str, object]:
        return {
            "op": "stats",
            "offered": dict(self.offered),
            "total": sum(self.offered.values()),
            "market_ms": self.market.now_ns // _NS_PER_MS,
            "slow_consumer_kicks": self.massive.metrics.slow_consumer_kicks,
            "events_sent": self.massive.metrics.events_sent,
            "connections": self.massive.connection_count,
        }

    def final(self) -> dict[str, object]:
        prev: dict[str, float] = {}
        for symbol in self.market.profiles:
            row = self.market.previous_close(symbol)
            close = None if row is None else row.get("c")
            if isinstance(close, int | float):
                prev[symbol] = float(close)
        return {
            **self.stats(),
            "op": "final",
            "trading_day": self.market.trading_day.isoformat(),
            "open_ms": self.open_ms,
            "finals": self.tracker.finals(),
            "prev_close": prev,
            "emission": self.points,
            "watched": [[symbol, at, wall] for (symbol, at), wall in self.watched.items()],
        }


def _say(payload: object) -> None:
    sys.stdout.buffer.write(_encode(payload) + b"\n")
    sys.stdout.buffer.flush()


async def _serve(config: SimProcessConfig) -> None:
    driver = await asyncio.to_thread(_Driver, config)
    await driver.massive.start()
    await driver.rest.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    task = asyncio.create_task(driver.run())
    _say(
        {
            "op": "ready",
            "feed": driver.massive.feed,
            "rest": driver.rest.base_url,
            "symbols": list(driver.market.profiles),
        }
    )
    decoder = msgspec.json.Decoder(_Command)
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                command = decoder.decode(line)
            except msgspec.DecodeError as exc:
                _say({"op": "error", "error": str(exc)})
                continue
            if command.op == "mode":
                driver.set_mode(command.mode, command.rate)
                _say({"op": "mode", "mode": command.mode})
            elif command.op == "watch":
                driver.watch = frozenset(command.symbols)
                _say({"op": "watch", "symbols": len(driver.watch)})
            elif command.op == "stats":
                _say(driver.stats())
            elif command.op == "final":
                driver.set_mode("idle", 0.0)
                _say(driver.final())
                return
            else:
                _say({"op": "error", "error": f"unknown op {command.op!r}"})
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.rest.stop()
        await driver.massive.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator process; ``argv[0]`` is the JSON :class:`SimProcessConfig`."""
    args = sys.argv[1:] if argv is None else argv
    config = msgspec.json.decode(args[0], type=SimProcessConfig)
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
