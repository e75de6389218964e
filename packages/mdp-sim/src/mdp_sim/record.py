"""Record what a Massive websocket connection sends, for later replay through the simulator.

Uses the official client in raw mode with the user's own key and feed, and writes one JSONL line
``{"recv_ns": int, "frame": str}`` per frame, nothing decoded or dropped. Recorded provider data
must never end up in the repository, so a path inside a git work tree is refused unless git
ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from mdp_core.clock import Clock, LiveClock
from mdp_sim.replay import RecordedFrame

__all__ = ["RecordingPathError", "RecordingResult", "check_recording_path", "record"]

_log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_FLUSH_LINES = 500
_CLOSE_GRACE = 5.0


class RecordingPathError(ValueError):
    """The output path is inside a git work tree and not ignored by git."""


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """What a recording session wrote."""

    path: Path
    frames: int
    bytes_written: int


def check_recording_path(path: Path) -> None:
    """Refuse a path that git would track (blocking: call it from a thread).

    Raises:
        RecordingPathError: if ``path`` is inside a git work tree and not git-ignored, or
            inside one while git is not available to tell.
    """
    resolved = path.expanduser().resolve()
    root = next((p for p in resolved.parents if (p / ".git").exists()), None)
    if root is None:
        return
    git = shutil.which("git")
    if git is None:
        msg = f"{resolved} is inside the git work tree {root} and git is not available to check it"
        raise RecordingPathError(msg)
    # The arguments are our own: a resolved path and fixed flags, no shell.
    outcome = subprocess.run(  # noqa: S603
        [git, "-C", str(root), "check-ignore", "-q", "--", str(resolved)],
        check=False,
        capture_output=True,
    )
    if outcome.returncode != 0:
        msg = (
            f"refusing to record into {resolved}: it is inside the git work tree {root} and not "
            "ignored; recorded provider data must never be committed (write outside the "
            "repository, e.g. ~/mdp-recordings/)"
        )
        raise RecordingPathError(msg)


async def record(
    out: Path,
    *,
    api_key: str,
    topics: Sequence[str],
    feed: str = "socket.massive.com",
    secure: bool = True,
    max_frames: int | None = None,
    duration: float | None = None,
    clock: Clock | None = None,
    connect_kwargs: dict[str, object] | None = None,
) -> RecordingResult:
    """Record frames from a Massive stocks feed into ``out`` (appending).

    Args:
        out: the JSONL file; refused if git would track it.
        api_key: the user's own Massive key.
        topics: subscriptions, e.g. ``["T.*", "A.*"]``.
        feed: ``host[:port]`` of the feed (the simulator's ``massive_feed`` in tests).
        secure: ``wss`` (True) or ``ws``.
        max_frames: stop after this many frames.
        duration: stop after this many seconds.
        clock: source of ``recv_ns`` and of the duration limit.
        connect_kwargs: extra arguments for the client's ``connect()`` (``max_size``, ...).

    Returns:
        How many frames and bytes were written.

    Raises:
        RecordingPathError: if ``out`` is a tracked path inside a git work tree.
    """
    from massive import WebSocketClient  # noqa: PLC0415 - the client is only needed to record

    await asyncio.to_thread(check_recording_path, out)
    live: Clock = clock if clock is not None else LiveClock()
    client = WebSocketClient(
        api_key=api_key,
        feed=feed,
        market="stocks",
        raw=True,
        subscriptions=list(topics),
        secure=secure,
    )
    handle: IO[bytes] = await asyncio.to_thread(_open_for_append, out)
    buffer: list[bytes] = []
    frames = 0
    written = 0
    done = asyncio.Event()

    async def on_frame(frame: str | bytes) -> None:
        nonlocal frames
        if done.is_set():
            return  # the limit is reached: nothing more is kept while the client shuts down
        text = frame if isinstance(frame, str) else frame.decode()
        buffer.append(_encode(RecordedFrame(recv_ns=live.now_ns(), frame=text)) + b"\n")
        frames += 1
        if len(buffer) >= _FLUSH_LINES:
            await flush()
        if max_frames is not None and frames >= max_frames:
            done.set()

    async def flush() -> None:
        nonlocal written
        if buffer:
            data = b"".join(buffer)
            buffer.clear()
            await asyncio.to_thread(handle.write, data)
            written += len(data)

    session = asyncio.get_running_loop().create_task(
        client.connect(on_frame, **(connect_kwargs or {}))
    )
    try:
        waiter = asyncio.get_running_loop().create_task(done.wait())
        await asyncio.wait({session, waiter}, timeout=duration, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if session.done():
            session.result()
    finally:
        await _end_session(client, session)
        await flush()
        await asyncio.to_thread(handle.close)
    _log.info("recording_written", extra={"frames": frames, "bytes": written, "path": str(out)})
    return RecordingResult(path=out, frames=frames, bytes_written=written)


async def _end_session(client: Any, session: asyncio.Task[None]) -> None:
    """Stop the official client: close its socket first, cancel only as a last resort.

    Cancelling alone is unreliable: under a busy stream the client's ``wait_for(recv, 1)``
    can swallow the cancellation on Python 3.11, so the socket is closed and ``connect()``
    allowed to return by itself.
    """
    if not session.done():
        with contextlib.suppress(Exception):
            await client.close()
        with contextlib.suppress(TimeoutError, Exception):
            async with asyncio.timeout(_CLOSE_GRACE):
                await asyncio.shield(session)
    if not session.done():
        session.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            async with asyncio.timeout(_CLOSE_GRACE):
                await session
    elif not session.cancelled() and session.exception() is not None:
        _log.debug("recording_session_ended", extra={"error": repr(session.exception())})


def _open_for_append(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")
