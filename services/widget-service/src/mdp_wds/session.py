"""One client connection: authentication, requests, a bounded send queue and its writer.

Fan-out never waits on a client: the hub calls :meth:`ClientSession.deliver`, which only appends
to this session's queue. A per-session writer task drains the queue into the socket; when a
client stops reading, its socket buffer fills, the writer blocks, the queue grows, and at the cap
the slow-client policy applies (close 4009, or drop the oldest messages), touching no one else.

Snapshot/stream ordering per subscription (the guarantee documented in the protocol reference):
the Redis subscription is confirmed active *before* the snapshot is read; updates that arrive
meanwhile are held back; the snapshot is queued; then the held updates that were dispatched after
the read began are released in order. So a client sees the snapshot first, never misses an
update published after it, and may at worst see an update the snapshot already contained.

Boards followed with ``deltas``: the session remembers the number of the last publication of
each such board it queued (the snapshot's, when the hub can vouch for it). The next publication
goes as a delta when it directly follows that number, whole otherwise, and not at all when the
client already has it (:mod:`mdp_wds.deltas`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from mdp_core.clock import NS_PER_SECOND, Clock
from mdp_core.logging import get_logger
from mdp_core.token import TokenError, TokenExpired, verify_token
from mdp_wds.access import FeedRef, FeedRefused, Grant, resolve_feed
from mdp_wds.bucket import TokenBucket
from mdp_wds.hub import BoardFrame, Hub, SnapshotUnavailable
from mdp_wds.protocol import (
    BadRequest,
    CloseCode,
    ErrorCode,
    Frame,
    Request,
    decode_request,
    encode_message,
    snapshot_frame,
)
from mdp_wds.revocations import RevokedSessions
from mdp_wds.settings import WdsSettings
from mdp_wds.stats import WdsStats

__all__ = ["ClientSession"]

_log = get_logger(__name__)

SERVER_NAME: Final = "mdp-wds/0.1.0"
_GRANT_ALL: Final = Grant(("*",))
_MAX_FRAMES_PER_WRITE: Final = 256


@dataclass(slots=True)
class _Held:
    """Updates held back for one subscription while its snapshot is being read."""

    frames: list[tuple[int, Frame, BoardFrame | None]] = field(default_factory=list)


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
        self._ws = ws
        self._revoked = revoked
        #: The control-plane login session of the token (``sid``), if it names one.
        self.session_id: str | None = None
        #: The client's address as the server resolved it (behind a trusted proxy: forwarded).
        self._address = address if address is not None else _peer(ws)
        self._hub = hub
        self._settings = settings
        self._stats = stats
        self._clock = clock
        self._grant: Grant | None = None
        self._subject = ""
        self._subs: dict[str, FeedRef] = {}
        self._held: dict[str, _Held] = {}
        #: Boards followed with deltas: the number of the last publication queued (None: the
        #: client's copy is of unknown number, so the next one goes whole).
        self._boards: dict[str, int | None] = {}
        self._queue: deque[Frame] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._close_reason = ""
        self._bucket = TokenBucket(settings.rate_per_second, settings.rate_burst, clock.monotonic())
        self._snapshot_lock = asyncio.Lock()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Names this session follows."""
        return tuple(self._subs)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection: authenticate, then answer requests until it closes."""
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        try:
            if await self._authenticate_first():
                await self._serve()
        except ConnectionClosed:
            pass
        finally:
            await self._cleanup()

    async def _authenticate_first(self) -> bool:
        try:
            raw = await asyncio.wait_for(self._ws.recv(), self._settings.auth_timeout_seconds)
        except TimeoutError:
            self._violation("auth_timeout")
            self.close(CloseCode.UNAUTHENTICATED, "authentication timeout", "auth_timeout")
            return False
        if not self._admit_message():
            return False
        try:
            request = decode_request(raw)
        except BadRequest as exc:
            if exc.kind != "bad_request":
                self._violation(exc.kind)  # hostile rather than confused: counted as such
                self.close(CloseCode.UNAUTHENTICATED, "authenticate first", exc.kind)
                return False
            request = None
        if request is None or request.op != "auth":
            self._violation("unauthenticated")
            self.close(CloseCode.UNAUTHENTICATED, "authenticate first", "unauthenticated")
            return False
        return await self._authenticate(request)

    async def _serve(self) -> None:
        async for raw in self._ws:
            if self._closing:
                return
            if not self._admit_message():
                return
            try:
                request = decode_request(raw)
            except BadRequest as exc:
                self._stats.violations[exc.kind] += 1
                self._error(exc.request_id, ErrorCode.BAD_REQUEST, exc.message)
                continue
            await self._dispatch(request)

    async def _cleanup(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        for ref in self._subs.values():
            self._hub.remove(self, ref)
        self._stats.client_subscriptions -= len(self._subs)
        self._subs.clear()
        self._held.clear()
        for task in self._tasks:
            task.cancel()
        if self._writer is not None:
            self._writer.cancel()
        if not self._closing:
            self._closing = True
            self._stats.disconnects[self._ended_by()] += 1
        self._queue.clear()
        if self._closer is not None:
            # The handler must outlive the close handshake, or websockets closes with 1000.
            await self._closer

    def _ended_by(self) -> str:
        """Why a connection we did not close ourselves ended (a metric label)."""
        sent = self._ws.protocol.close_sent
        if sent is not None and sent.code == CloseCode.GOING_AWAY:
            return "shutdown"
        if sent is not None and sent.code == CloseCode.FRAME_TOO_BIG:
            self._violation("frame_too_big")
            return "frame_too_big"
        if self._ws.close_code is None or self._ws.close_code == 1006:
            return "connection_lost"
        return "client_closed"

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
        if self._closing:
            return
        self._closing = True
        self._close_reason = why
        self._stats.disconnects[why] += 1
        self._queue.clear()
        self._queued_bytes = 0
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: CloseCode, reason: str) -> None:
        try:
            await asyncio.wait_for(
                self._ws.close(code, reason), self._settings.close_timeout_seconds
            )
        except TimeoutError:
            self._ws.transport.abort()

    def _violation(self, reason: str) -> None:
        self._stats.violations[reason] += 1
        _log.info(
            "wds_client_violation",
            reason=reason,
            subject=self._subject or None,
            address=self._address,
        )

    def _admit_message(self) -> bool:
        if self._bucket.take(self._clock.monotonic()):
            return True
        self._violation("rate_limited")
        self.close(CloseCode.RATE_LIMITED, "rate limit exceeded", "rate_limited")
        return False

    # --- authentication -------------------------------------------------------------------

    async def _authenticate(self, request: Request) -> bool:
        now_s = self._clock.now_ns() / NS_PER_SECOND
        secret = self._settings.token_secret
        dev_key = self._settings.dev_key
        expires_at: int | None
        if request.token is not None and secret is not None:
            try:
                claims = verify_token(secret.reveal(), request.token, now_s)
            except TokenError as exc:
                expired = isinstance(exc, TokenExpired)
                self._violation("token_expired" if expired else f"token_{exc.kind}")
                message = "token expired" if expired else "invalid token"
                why = "token_expired" if expired else "bad_token"
                self.close(CloseCode.UNAUTHENTICATED, message, why)
                return False
            sid = claims.session_id
            if (
                sid is not None
                and self._revoked is not None
                and await self._revoked.is_revoked(sid)
            ):
                self._violation("token_revoked")
                self.close(CloseCode.UNAUTHENTICATED, "session ended", "session_revoked")
                return False
            self.session_id = sid
            grant, subject, expires_at = Grant.of(claims.feeds), claims.subject, claims.expires_at
        elif (
            request.key is not None
            and dev_key is not None
            and hmac.compare_digest(request.key.encode(), dev_key.reveal().encode())
        ):
            grant, subject, expires_at = _GRANT_ALL, "dev-key", None
        else:
            self._violation("bad_credentials")
            self.close(CloseCode.UNAUTHENTICATED, "invalid credentials", "bad_token")
            return False
        self._grant, self._subject = grant, subject
        self._schedule_expiry(expires_at, now_s)
        self._revoke_ungranted(request.id)
        self._send(
            encode_message(
                "auth_ok",
                request.id,
                expires_at=expires_at,
                feeds=list(grant.patterns),
                server=SERVER_NAME,
            )
        )
        return True

    def _schedule_expiry(self, expires_at: int | None, now_s: float) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if expires_at is not None:
            delay = max(0.0, expires_at - now_s)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._violation("token_expired")
        self.close(CloseCode.UNAUTHENTICATED, "token expired", "token_expired")

    def _revoke_ungranted(self, request_id: int | None) -> None:
        """After a refresh, drop subscriptions the new token no longer grants."""
        grant = self._grant
        if grant is None:
            return
        for name, ref in list(self._subs.items()):
            if not grant.allows(name):
                self._drop(name, ref)
                self._error(
                    request_id, ErrorCode.FORBIDDEN_FEED, f"the new token does not grant {name!r}"
                )

    # --- requests -------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> None:
        if request.op == "ping":
            self._send(encode_message("pong", request.id))
        elif request.op == "auth":
            await self._authenticate(request)
        elif request.op == "subscribe":
            await self._subscribe(request)
        elif request.op == "unsubscribe":
            self._unsubscribe(request)
        else:
            await self._get(request)

    def _limit(self, request: Request) -> int:
        wanted = request.limit or self._settings.snapshot_limit_default
        return min(wanted, self._settings.snapshot_limit_max)

    def _authorize(self, name: str) -> FeedRef:
        ref = resolve_feed(name)
        assert self._grant is not None
        self._grant.check(ref)
        return ref

    async def _subscribe(self, request: Request) -> None:
        accepted: list[FeedRef] = []
        for name in request.feeds:
            if name in self._subs:
                accepted.append(self._subs[name])
                continue
            try:
                ref = self._authorize(name)
            except FeedRefused as exc:
                self._violation(exc.code.value)
                self._error(request.id, exc.code, exc.message)
                continue
            if len(self._subs) >= self._settings.max_subscriptions:
                self._violation("too_many_subscriptions")
                self._error(
                    request.id,
                    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                    f"at most {self._settings.max_subscriptions} subscriptions per connection; "
                    f"{name!r} refused",
                )
                continue
            self._subs[name] = ref
            self._held[name] = _Held()
            if request.deltas and ref.feed.delta_key is not None and not ref.is_pattern:
                self._boards[name] = None
            self._stats.client_subscriptions += 1
            accepted.append(ref)
        fresh = [ref for ref in accepted if ref.name in self._held]
        await asyncio.gather(*(self._hub.add(self, ref) for ref in fresh))
        if self._closing:
            return
        self._send(encode_message("subscribed", request.id, feeds=[ref.name for ref in accepted]))
        limit = self._limit(request)
        async with self._snapshot_lock:
            for ref in fresh:
                await self._snapshot_then_release(ref, limit, send_snapshot=request.snapshot)

    def _unsubscribe(self, request: Request) -> None:
        removed: list[str] = []
        for name in request.feeds:
            ref = self._subs.get(name)
            if ref is not None:
                self._drop(name, ref)
                removed.append(name)
        self._send(encode_message("unsubscribed", request.id, feeds=removed))

    def _drop(self, name: str, ref: FeedRef) -> None:
        del self._subs[name]
        self._held.pop(name, None)
        self._boards.pop(name, None)
        self._stats.client_subscriptions -= 1
        self._hub.remove(self, ref)

    async def _get(self, request: Request) -> None:
        assert request.feed is not None
        try:
            ref = self._authorize(request.feed)
        except FeedRefused as exc:
            self._violation(exc.code.value)
            self._error(request.id, exc.code, exc.message)
            return
        try:
            items = await self._hub.snapshot(ref, self._limit(request))
        except SnapshotUnavailable:
            self._error(request.id, ErrorCode.UNAVAILABLE, "the cache is unavailable; retry")
            return
        for item in items:
            self._enqueue(self._snapshot(item.feed, item.data, request.id))
            self._stats.snapshots_out += 1

    def _snapshot(self, name: str, data: bytes, request_id: int | None = None) -> Frame:
        """A snapshot frame; for a board followed with deltas, numbered when the hub knows it."""
        if name not in self._boards:
            return snapshot_frame(name, data, request_id)
        seq = self._hub.board_seq(name, data)
        self._boards[name] = seq
        return snapshot_frame(name, data, request_id, board=True, seq=seq)

    def _board_frame(self, key: str, frame: Frame, board: BoardFrame | None) -> Frame | None:
        """What to queue for a publication: its delta, the whole of it, or nothing."""
        if board is None or key not in self._boards:
            return frame
        last = self._boards[key]
        if last is not None and board.seq <= last:
            return None  # the client's copy already is this publication (or a later one)
        self._boards[key] = board.seq
        if board.delta is not None and last == board.seq - 1:
            self._stats.deltas_out += 1
            return board.delta
        return frame

    async def _snapshot_then_release(
        self, ref: FeedRef, limit: int, *, send_snapshot: bool
    ) -> None:
        name = ref.name
        mark = self._hub.last_seq
        if send_snapshot:
            try:
                items = await self._hub.snapshot(ref, limit)
            except SnapshotUnavailable:
                items = []
                self._error(
                    None, ErrorCode.UNAVAILABLE, f"no snapshot for {name!r} now; it will follow"
                )
            if name not in self._subs or self._closing:
                return  # unsubscribed or closed while reading
            for item in items:
                self._enqueue(self._snapshot(item.feed, item.data))
                self._stats.snapshots_out += 1
        held = self._held.pop(name, None)
        if held is not None:
            for seq, frame, board in held.frames:
                if seq > mark:
                    chosen = self._board_frame(name, frame, board)
                    if chosen is not None:
                        self._enqueue(chosen)

    # --- hub callbacks --------------------------------------------------------------------

    def deliver(self, key: str, seq: int, frame: Frame, board: BoardFrame | None = None) -> None:
        """Queue an update (called by the hub; never blocks)."""
        held = self._held.get(key)
        if held is None:
            chosen = self._board_frame(key, frame, board)
            if chosen is not None:
                self._enqueue(chosen)
        elif len(held.frames) < self._settings.send_queue_messages:
            held.frames.append((seq, frame, board))
        else:
            held.frames.pop(0)  # the snapshot that follows supersedes it anyway
            held.frames.append((seq, frame, board))
            self._stats.drops["held_overflow"] += 1

    def resync(self) -> None:
        """Re-send every subscription's snapshot (the pub/sub link had a gap)."""
        if self._closing or not self._subs:
            return
        for name in self._subs:
            self._held.setdefault(name, _Held())
        task = asyncio.get_running_loop().create_task(self._resync())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resync(self) -> None:
        limit = self._settings.snapshot_limit_default
        async with self._snapshot_lock:
            for ref in list(self._subs.values()):
                if self._closing:
                    return
                await self._snapshot_then_release(ref, limit, send_snapshot=True)

    # --- sending --------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._enqueue(Frame(data))

    def _error(self, request_id: int | None, code: ErrorCode, message: str) -> None:
        self._send(encode_message("error", request_id, code=code.value, message=message))

    def _enqueue(self, frame: Frame) -> None:
        if self._closing:
            return
        size = len(frame.data)
        settings = self._settings
        while self._queue and (
            len(self._queue) >= settings.send_queue_messages
            or self._queued_bytes + size > settings.send_queue_bytes
        ):
            if settings.slow_client_policy == "disconnect":
                self._violation("too_slow")
                self.close(CloseCode.TOO_SLOW, "too slow: send queue overflow", "too_slow")
                return
            dropped = self._queue.popleft()
            self._queued_bytes -= len(dropped.data)
            self._stats.drops["queue_full"] += 1
        self._queue.append(frame)
        self._queued_bytes += size
        self._wake.set()

    async def _write_loop(self) -> None:
        """Drain the queue into the socket: every queued frame, one ``write`` per wake-up.

        Frames arrive pre-built (:attr:`Frame.wire`, identical for every client), so a burst
        costs one concatenation and one system call per client, not a serialization and a
        write per message. Anything the websockets protocol has pending (a pong) goes first, so
        frames never interleave. When the socket buffer is above the write limit the loop waits
        for the peer: backpressure that only this client's queue feels.
        """
        queue, ws, stats, clock = self._queue, self._ws, self._stats, self._clock
        protocol, transport = ws.protocol, ws.transport
        try:
            while True:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if protocol.state is not State.OPEN:
                    return
                now_s = clock.now_ns() / NS_PER_SECOND
                chunks = protocol.data_to_send()
                sent = 0
                while queue and sent < _MAX_FRAMES_PER_WRITE:
                    frame = queue.popleft()
                    self._queued_bytes -= len(frame.data)
                    chunks.append(frame.wire)
                    sent += 1
                    if frame.as_of_ms is not None:
                        stats.lag.observe(max(0.0, now_s - frame.as_of_ms / 1_000))
                transport.write(b"".join(chunks))
                stats.messages_out += sent
                if ws.paused:
                    await ws.drain()
        except (ConnectionClosed, ConnectionError):
            pass


def _peer(ws: ServerConnection) -> str | None:
    with contextlib.suppress(Exception):
        remote = ws.remote_address
        if isinstance(remote, tuple) and remote:
            return str(remote[0])
    return None
