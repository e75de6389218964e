"""One client connection's socket shell around :class:`~mdp_wds.session_protocol.SessionProtocol`.

Every rule (authentication, expiry, caps, snapshot-before-update ordering, the slow-client
policy) is decided by the pure protocol object; this module only carries messages in, runs the
commands it emits (hub subscriptions, snapshot reads, the revocation check, the expiry timer,
closing) and drains its send queue into the socket. Websockets internals stay in
:mod:`mdp_wds.websocket`.

Fan-out never waits on a client: the hub calls :meth:`ClientSession.deliver`, which only appends
to the protocol's queue and schedules one flush callback for the session, so a burst of updates
(one Redis read) reaches each client in one ``write`` made in the next loop iteration, with no
task switch. When a client stops reading, its socket buffer passes the write limit, the
session's writer task takes over and waits for the peer, the queue grows, and at the cap the
slow-client policy applies (close 4009, or drop the oldest messages), touching no one else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from importlib.metadata import version
from typing import Final

from websockets.asyncio.server import ServerConnection

from mdp_core.clock import NS_PER_SECOND, Clock
from mdp_core.logging import get_logger
from mdp_wds.access import FeedRef
from mdp_wds.hub import BoardFrame, Hub, SnapshotItem, SnapshotUnavailable, TooManyFieldSets
from mdp_wds.protocol import CloseCode, Frame
from mdp_wds.revocations import RevokedSessions
from mdp_wds.session_protocol import (
    AddFeeds,
    CheckRevoked,
    Close,
    Command,
    ExpireAfter,
    ReadSnapshot,
    RemoveFeed,
    SessionProtocol,
)
from mdp_wds.settings import WdsSettings
from mdp_wds.stats import WdsStats
from mdp_wds.websocket import ClientSocket, ConnectionClosed

__all__ = ["SERVER_NAME", "ClientSession"]

SERVER_NAME: Final = f"mdp-wds/{version('mdp-wds')}"
_log = get_logger("mdp_wds.session")
_MAX_FRAMES_PER_WRITE: Final = 256


class ClientSession:
    """Serves one websocket until it closes.

    Args:
        ws: The accepted connection.
        hub: The process's fan-out hub.
        settings: Limits and secrets.
        stats: Process counters.
        clock: Wall time for token expiry and delivery lag; monotonic time for rate limits.
        address: The client's address as the server resolved it (logs); the peer's by default.
        revoked: The revoked-session set; a token of an ended login session is refused.
    """

    def __init__(
        self,
        ws: ServerConnection,
        hub: Hub,
        settings: WdsSettings,
        stats: WdsStats,
        clock: Clock,
        *,
        address: str | None = None,
        revoked: RevokedSessions | None = None,
    ) -> None:
        self._socket = ClientSocket(ws)
        self._hub = hub
        self._settings = settings
        self._stats = stats
        self._clock = clock
        self._revoked = revoked
        self._protocol = SessionProtocol(
            settings,
            stats,
            clock.monotonic(),
            address=address if address is not None else self._socket.peer,
            server_name=SERVER_NAME,
        )
        self._wake = asyncio.Event()  # the writer task: the socket is above its write limit
        self._flush_pending = False
        self._draining = False
        self._write_failed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    @property
    def session_id(self) -> str | None:
        """The control-plane login session of the token (``sid``), if it names one."""
        return self._protocol.session_id

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Names this session follows."""
        return self._protocol.subscriptions

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection: authenticate, then answer requests until it closes."""
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        protocol = self._protocol
        try:
            try:
                raw = await self._socket.recv(self._settings.auth_timeout_seconds)
            except TimeoutError:
                protocol.auth_timed_out()
                self._pump()
                return
            while True:
                now = self._clock
                protocol.receive(
                    raw, monotonic=now.monotonic(), now_seconds=now.now_ns() / NS_PER_SECOND
                )
                self._pump()
                await self._idle.wait()
                if self._failure is not None:
                    raise self._failure
                if protocol.closing:
                    return
                raw = await self._socket.recv()
        except ConnectionClosed:
            pass
        finally:
            await self._cleanup()

    async def _cleanup(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        socket = self._socket
        self._protocol.connection_ended(socket.close_sent, socket.close_received)
        self._pump()
        for task in self._tasks:
            task.cancel()
        if self._writer is not None:
            self._writer.cancel()
        if self._closer is not None:
            # The handler must outlive the close handshake, or websockets closes with 1000.
            await self._closer

    async def closed(self) -> None:
        """Return once a close started by :meth:`close` has finished (at once without one)."""
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._closer)

    def close(self, code: CloseCode, reason: str, why: str) -> None:
        """Close the socket with ``code`` (never blocks; a stalled peer is cut after a timeout).

        Args:
            code: The websocket close code.
            reason: Human-readable close reason sent to the client.
            why: The metric label of the disconnect.
        """
        self._protocol.close(code, reason, why)
        self._pump()

    # --- hub callbacks --------------------------------------------------------------------

    def deliver(self, key: str, seq: int, frame: Frame, board: BoardFrame | None = None) -> None:
        """Queue an update (called by the hub; never blocks)."""
        protocol = self._protocol
        protocol.deliver(key, seq, frame, board)
        if protocol.closing:
            self._pump()  # the slow-client policy may have closed it
        elif protocol.queued:
            self._schedule_flush()

    def resync(self) -> None:
        """Re-send every subscription's snapshot (the pub/sub link had a gap)."""
        self._protocol.resync()
        self._pump()

    # --- commands -------------------------------------------------------------------------

    def _pump(self) -> None:
        """Run what the protocol asked for; answers come back through tasks."""
        protocol = self._protocol
        for command in protocol.commands():
            self._run(command)
        if protocol.busy:
            self._idle.clear()
        else:
            self._idle.set()
        if protocol.queued:
            self._schedule_flush()

    def _run(self, command: Command) -> None:
        if isinstance(command, RemoveFeed):
            self._hub.remove(self, command.ref)
        elif isinstance(command, ReadSnapshot):
            self._spawn(self._read_snapshot(command))
        elif isinstance(command, AddFeeds):
            self._spawn(self._add_feeds(command))
        elif isinstance(command, CheckRevoked):
            if self._revoked is None:
                self._protocol.revocation_checked(False)
            else:
                self._spawn(self._check_revoked(command))
        elif isinstance(command, ExpireAfter):
            self._set_expiry(command.seconds)
        else:
            self._start_close(command)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (failure := task.exception()) is not None:
            self._failure = failure
            self._idle.set()  # the request loop re-raises it: the handler ends, as it would
            # A job the hub started (a resync's snapshots) can fail while the loop waits for a
            # client that never speaks: its feeds would stay held. Close now (1011), so the
            # client reconnects and subscribes again.
            _log.error("session_task_failed", error=type(failure).__name__)
            self.close(CloseCode.INTERNAL_ERROR, "internal error", "internal_error")

    async def _add_feeds(self, command: AddFeeds) -> None:
        refused: list[str] = []

        async def add(ref: FeedRef) -> None:
            try:
                await self._hub.add(self, ref, command.fields)
            except TooManyFieldSets:
                refused.append(ref.name)

        await asyncio.gather(*(add(ref) for ref in command.refs))
        self._protocol.feeds_added(refused)
        self._pump()

    async def _read_snapshot(self, command: ReadSnapshot) -> None:
        mark = self._hub.last_seq
        items: list[SnapshotItem] | None
        try:
            items = await self._hub.snapshot(command.ref, command.limit)
        except SnapshotUnavailable:
            items = None
        board_seq = None
        if items and not command.ref.is_pattern:
            # Read before any other task runs: the number is the board publication's just read.
            board_seq = self._hub.board_seq(command.ref.name, items[0].data, command.fields)
        self._protocol.snapshot_read(command.ticket, mark, items, board_seq)
        self._pump()

    async def _check_revoked(self, command: CheckRevoked) -> None:
        assert self._revoked is not None
        revoked = await self._revoked.is_revoked(command.session_id)
        self._protocol.revocation_checked(revoked)
        self._pump()

    def _set_expiry(self, seconds: float | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if seconds is not None:
            self._expiry = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._protocol.expired()
        self._pump()

    def _start_close(self, command: Close) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(
            self._socket.close(command.code, command.reason, self._settings.close_timeout_seconds)
        )

    # --- sending --------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        """Write the queue in the next loop iteration (once, however many updates arrive)."""
        if not self._flush_pending and not self._draining:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._draining:
            self._write_queued()

    def _write_queued(self) -> None:
        """Drain the queue into the socket: up to 256 queued frames per ``write``.

        Frames arrive pre-built (:attr:`Frame.wire`, identical for every client), so a burst
        costs one concatenation and one system call per client, not a serialization and a
        write per message. When the socket buffer passes the write limit the writer task
        takes over and waits for the peer: backpressure that only this client's queue feels.
        """
        protocol, socket, stats = self._protocol, self._socket, self._stats
        if self._closer is not None or self._write_failed:
            return  # closing: the close handshake owns the socket now
        try:
            while protocol.queued and socket.open:
                now_seconds = self._clock.now_ns() / NS_PER_SECOND
                frames = protocol.take(_MAX_FRAMES_PER_WRITE)
                for frame in frames:
                    if frame.as_of_ms is not None:
                        stats.lag.observe(max(0.0, now_seconds - frame.as_of_ms / 1_000))
                socket.write([frame.wire for frame in frames])
                stats.messages_out += len(frames)
                if socket.paused:
                    self._draining = True
                    self._wake.set()
                    return
        except (ConnectionClosed, ConnectionError):
            self._write_failed = True

    async def _write_loop(self) -> None:
        """Wait for a stalled peer to read, then go on writing (see :meth:`_write_queued`)."""
        try:
            while True:
                self._wake.clear()
                await self._wake.wait()
                while self._draining:
                    await self._socket.drain()
                    self._draining = False
                    self._write_queued()
        except (ConnectionClosed, ConnectionError):
            self._write_failed = True
