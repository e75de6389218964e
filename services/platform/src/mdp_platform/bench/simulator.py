"""The simulator process of ``mdp bench`` (``python -m mdp_platform.bench.simulator CONFIG_JSON``).

It serves the synthetic market on the Massive websocket and REST servers and paces it as the
benchmark asks, phase by phase, over a line protocol (one JSON object per line):

* stdin ``{"op": "mode", "mode": "idle" | "rate" | "max" | "window", "rate": 10000}``: switch
  pacing (``max``: send the next chunk only once the listener has read the previous one;
  ``window``: the same, but never past the count ``allow`` last gave);
* stdin ``{"op": "allow", "events": N}``: in ``window`` mode, send until N events were offered
  in all (the benchmark moves N as the processors take events: a closed loop);
* stdin ``{"op": "prepare", "events": N}``: generate and encode at least N events ahead (the
  tape), reply once they are ready; pacing serves the tape before generating live, so a
  measured phase costs the two shared cores a copy into the socket per event instead of
  generating, encoding and checking it (the check folds them while the market is paused,
  and at ``final``);
* stdin ``{"op": "stats"}``: reply with the events offered so far, by type, and how many
  came from the tape;
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
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time as wall_time
from datetime import timedelta
from typing import Final, cast

import msgspec

from mdp_platform.bench.board import BoardTracker
from mdp_sim.faults import Faults
from mdp_sim.market import Market, event_time_ms
from mdp_sim.massive_rest import MassiveRestConfig, MassiveRestServer
from mdp_sim.massive_ws import SYMBOL_KEYS, MassiveWsConfig, MassiveWsServer
from mdp_sim.scenario import ScenarioConfig

__all__ = ["SimProcessConfig", "main", "mix_kinds"]

_CHUNK: Final = 2_000
_TICK: Final = 0.005
_MAX_POINTS: Final = 500_000
#: Sends folded into the check per step while the market is paused (~10,000 events, ~50 ms).
_CHECK_CHUNKS: Final = 5
_NS_PER_MS: Final = 1_000_000
_encode = msgspec.json.Encoder().encode
_decode_events = msgspec.json.Decoder(list[dict[str, object]]).decode


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
    events: int = 0


def mix_kinds(mix: tuple[str, ...]) -> frozenset[str]:
    """Wire event codes streamed for a mix: aggregates bring ``AM`` and ``LULD`` along."""
    kinds: set[str] = set()
    for item in mix:
        if item == "A":
            kinds |= {"A", "AM", "LULD"}
        else:
            kinds.add(item)
    return frozenset(kinds)


#: One event of the tape: its code, symbol, instant (Unix ms) and JSON.
_Entry = tuple[str, str, int, bytes]


class _Tape:
    """Events generated and encoded ahead of a measured phase, served in market order.

    At saturation the simulator shares the two cores with the pipeline it feeds: generating,
    encoding and checking an event live costs it about 12 µs, more than the processor spends
    on it, so the phase measured the load generator as much as the pipeline. From the tape an
    event costs its routing and the copy into the socket.
    """

    __slots__ = ("_at", "_entries")

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._at = 0

    def __len__(self) -> int:
        return len(self._entries) - self._at

    def extend(self, entries: list[_Entry]) -> None:
        self._entries.extend(entries)

    def take(self, n: int) -> list[_Entry]:
        """At least ``n`` events (all left, if fewer), ending on a whole instant."""
        entries, at = self._entries, self._at
        end = min(at + max(1, n), len(entries))
        while end < len(entries) and entries[end][2] == entries[end - 1][2]:
            end += 1
        taken = entries[at:end]
        if end == len(entries):
            self._entries, self._at = [], 0
        else:
            self._at = end
        return taken


@dataclass(slots=True)
class _Pacing:
    mode: str = "idle"
    rate: float = 0.0
    origin: float = 0.0
    sent: int = 0
    #: ``window`` mode: the most events offered in all before the next ``allow``.
    limit: int = 0


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
        self.tape = _Tape()
        #: Events sent and not yet folded into the check, in the order sent: tape events, and
        #: live ones sent after them (the check then waits, so it folds everything in order).
        #: Folded a slice at a time while the market is paused, the rest at ``final``: folding
        #: is ~5 µs an event, seconds for a tape, which must not stall a measured phase.
        self.unchecked: deque[list[_Entry] | list[dict[str, object]]] = deque()
        self.tape_sent = 0
        self.live_sent = 0

    def send(self, n: int, *, flush: bool) -> int:
        """Send at least ``n`` events (whole instants): from the tape while it lasts."""
        if self.tape:
            return self.emit_tape(self.tape.take(n), flush=flush)
        return self.emit(self.market.take(n).events, flush=flush)

    async def prepare(self, events: int) -> dict[str, object]:
        """Generate and encode at least ``events`` events onto the tape, yielding between chunks."""
        started = time.monotonic()
        kinds = self.kinds
        prepared = 0
        while prepared < events:
            chunk: list[_Entry] = []
            for event in self.market.take(_CHUNK).events:
                ev = event.get("ev")
                if ev not in kinds:
                    continue
                symbol = event.get(SYMBOL_KEYS.get(str(ev), "sym"))
                chunk.append((str(ev), str(symbol), event_time_ms(event), _encode(event)))
            self.tape.extend(chunk)
            prepared += len(chunk)
            await asyncio.sleep(0)  # the websocket and REST servers keep answering
        return {
            "op": "prepare",
            "events": prepared,
            "seconds": round(time.monotonic() - started, 2),
        }

    def emit_tape(self, entries: list[_Entry], *, flush: bool) -> int:
        if not entries:
            return 0
        self.massive.publish_encoded(((ev, sym, data) for ev, sym, _, data in entries), flush=flush)
        self.unchecked.append(entries)
        self.offered.update(ev for ev, _, _, _ in entries)
        self.tape_sent += len(entries)
        self._note(entries[-1][2], ((sym, at) for _, sym, at, _ in entries))
        return len(entries)

    def check(self, chunks: int | None = None) -> None:
        """Fold events sent so far into the check in the order sent (at most ``chunks`` sends)."""
        unchecked = self.unchecked
        while unchecked and (chunks is None or chunks > 0):
            sent = unchecked.popleft()
            if sent and isinstance(sent[0], tuple):
                data = b",".join(entry[3] for entry in sent)
                self.tracker.add(_decode_events(b"[" + data + b"]"))
            else:
                self.tracker.add(cast("list[dict[str, object]]", sent))
            if chunks is not None:
                chunks -= 1

    def _note(self, last: int, sent: Iterable[tuple[str, int]]) -> None:
        """Map the latest event time sent to now; note when each watched event was sent."""
        now = time.time_ns()
        if (not self.points or last > self.points[-1][0]) and len(self.points) < _MAX_POINTS:
            self.points.append((last, now))
        watch = self.watch
        if watch and len(self.watched) < _MAX_POINTS:
            for symbol, at in sent:
                if symbol in watch:
                    self.watched.setdefault((symbol, at), now)

    def emit(self, events: list[dict[str, object]], *, flush: bool) -> int:
        kinds = self.kinds
        wanted = [e for e in events if e.get("ev") in kinds]
        if not wanted:
            return 0
        if self.unchecked:
            self.unchecked.append(wanted)
        else:
            self.tracker.add(wanted)
        self.offered.update(str(e["ev"]) for e in wanted)
        self.massive.publish(wanted, flush=flush)
        self.live_sent += len(wanted)
        self._note(
            event_time_ms(wanted[-1]),
            ((str(e.get("sym", e.get("T"))), event_time_ms(e)) for e in wanted),
        )
        return len(wanted)

    def set_mode(self, mode: str, rate: float) -> None:
        # The window's count carries over: the bench may allow before it switches.
        limit = self.pacing.limit
        self.pacing = _Pacing(mode=mode, rate=rate, origin=time.monotonic(), limit=limit)
        self.changed.set()

    def room(self) -> int:
        """Events ``max`` or ``window`` mode sends next (0: wait for the next ``allow``)."""
        if self.pacing.mode == "window":
            return max(0, min(_CHUNK, self.pacing.limit - self.tape_sent - self.live_sent))
        return _CHUNK

    def allow(self, events: int) -> None:
        """Let ``window`` mode offer up to ``events`` events in all (never lowered)."""
        self.pacing.limit = max(self.pacing.limit, events)
        self.changed.set()

    async def run(self) -> None:
        while True:
            pacing = self.pacing
            if pacing.mode == "idle" or not self.massive.has_subscribers:
                if self.unchecked and pacing.mode == "idle":
                    self.check(_CHECK_CHUNKS)  # a slice (~50 ms), then look at the mode again
                    await asyncio.sleep(0)
                    continue
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self.changed.wait()
                continue
            if pacing.mode in {"max", "window"}:
                room = self.room()
                if room <= 0:
                    self.changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.05):
                            await self.changed.wait()
                    continue
                self.send(room, flush=True)
                await self.massive.wait_drained()
                await asyncio.sleep(0)
                continue
            due = int((time.monotonic() - pacing.origin) * pacing.rate) - pacing.sent
            if due <= 0:
                await asyncio.sleep(_TICK)
                continue
            sent = self.send(min(due, _CHUNK), flush=False)
            pacing.sent += max(1, sent)
            await asyncio.sleep(0)

    def stats(self) -> dict[str, object]:
        return {
            "op": "stats",
            "offered": dict(self.offered),
            "total": sum(self.offered.values()),
            "market_ms": self.market.now_ns // _NS_PER_MS,
            "tape_sent": self.tape_sent,
            "live_sent": self.live_sent,
            "slow_consumer_kicks": self.massive.metrics.slow_consumer_kicks,
            "events_sent": self.massive.metrics.events_sent,
            "connections": self.massive.connection_count,
        }

    def final(self) -> dict[str, object]:
        self.check()
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
            elif command.op == "allow":
                driver.allow(command.events)
                _say({"op": "allow", "events": driver.pacing.limit})
            elif command.op == "prepare":
                _say(await driver.prepare(command.events))
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
