"""Replay a recorded Massive session through the simulated websocket server.

A recording is JSONL, one ``{"recv_ns": int, "frame": str}`` line per frame as received (see
:mod:`mdp_sim.record`). Each frame is decoded and its events re-published, so every connection
gets only what it subscribed to, whatever the recording subscribed to. Frames keep their
original gaps divided by ``speed``, or go as fast as the consumers read (``speed=None``).
Status elements of the recording are skipped: the server speaks its own protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

from mdp_core.clock import NS_PER_SECOND, Clock, LiveClock
from mdp_sim.massive_ws import MassiveWsServer, StateWatch

__all__ = ["RecordedFrame", "RecordingError", "ReplayBroadcaster", "ReplayMetrics", "frame_events"]

_log = logging.getLogger(__name__)
_BATCH_LINES = 2_000


class RecordingError(ValueError):
    """A recording line that is not ``{"recv_ns": int, "frame": str}``."""


class RecordedFrame(msgspec.Struct, frozen=True):
    """One frame as received from the provider, with its receive time (Unix ns)."""

    recv_ns: int
    frame: str


_line_decoder = msgspec.json.Decoder(RecordedFrame)
_frame_decoder = msgspec.json.Decoder()


def frame_events(frame: str) -> list[dict[str, object]]:
    """The market events of a recorded frame (status elements and non-objects left out).

    Raises:
        RecordingError: if the frame is not a JSON array.
    """
    try:
        decoded = _frame_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        msg = f"recorded frame is not JSON: {exc}"
        raise RecordingError(msg) from exc
    if not isinstance(decoded, list):
        msg = "recorded frame is not a JSON array"
        raise RecordingError(msg)
    return [e for e in decoded if isinstance(e, dict) and e.get("ev") not in {None, "status"}]


class ReplayMetrics(msgspec.Struct):
    """What a replay did so far."""

    frames: int = 0
    events: int = 0
    bad_lines: int = 0
    passes: int = 0


class ReplayBroadcaster:
    """Publishes a recording's events to a :class:`MassiveWsServer`.

    Args:
        path: the JSONL recording.
        massive: the server whose connections receive the events.
        speed: divides the original gaps between frames; ``None`` replays as fast as the
            consumers read.
        loop: start again from the top when the recording ends.
        real: real clock used for pacing (tests may pass a manual one).
    """

    def __init__(
        self,
        path: Path,
        massive: MassiveWsServer,
        *,
        speed: float | None = 1.0,
        loop: bool = False,
        real: Clock | None = None,
    ) -> None:
        if speed is not None and not speed > 0:
            msg = f"speed must be positive or None; it was {speed}"
            raise ValueError(msg)
        self.path = path
        self.massive = massive
        self.speed = speed
        self.loop = loop
        self.metrics = ReplayMetrics()
        self.watch = StateWatch()
        self.finished = asyncio.Event()
        self._real: Clock = real if real is not None else LiveClock()

    async def run(self) -> None:
        """Replay (waiting first for a subscriber) until the end, or forever with ``loop``."""
        while True:
            await self.massive.wait_for_subscriber()
            await self._one_pass()
            self.metrics.passes += 1
            if not self.loop:
                self.finished.set()
                self.watch.notify()
                return

    async def _one_pass(self) -> None:
        handle = await asyncio.to_thread(self.path.open, "rb")
        try:
            first_ns: int | None = None
            origin = self._real.monotonic()
            while True:
                batch = await asyncio.to_thread(_read_batch, handle, _BATCH_LINES)
                if not batch:
                    return
                for line in batch:
                    record = self._parse(line)
                    if record is None:
                        continue
                    if first_ns is None:
                        first_ns = record.recv_ns
                    await self._pace(origin, record.recv_ns - first_ns)
                    await self._publish(record)
        finally:
            await asyncio.to_thread(handle.close)

    def _parse(self, line: bytes) -> RecordedFrame | None:
        if not line.strip():
            return None
        try:
            return _line_decoder.decode(line)
        except msgspec.DecodeError:
            self.metrics.bad_lines += 1
            _log.warning("recording_line_skipped", extra={"path": str(self.path)})
            return None

    async def _pace(self, origin: float, offset_ns: int) -> None:
        if self.speed is None:
            await self.massive.wait_drained()
            return
        due = origin + offset_ns / NS_PER_SECOND / self.speed
        delay = due - self._real.monotonic()
        if delay > 0:
            await self._real.sleep(delay)

    async def _publish(self, record: RecordedFrame) -> None:
        try:
            events = frame_events(record.frame)
        except RecordingError:
            self.metrics.bad_lines += 1
            return
        self.metrics.frames += 1
        self.metrics.events += len(events)
        self.massive.publish(events, flush=self.speed is None)
        self.watch.notify()
        await asyncio.sleep(0)


def _read_batch(handle: IO[bytes], count: int) -> list[bytes]:
    """Read up to ``count`` lines (runs in a worker thread)."""
    return list(_take(handle, count))


def _take(lines: Iterator[bytes] | IO[bytes], count: int) -> Iterator[bytes]:
    for index, line in enumerate(lines):
        yield line
        if index + 1 >= count:
            return
