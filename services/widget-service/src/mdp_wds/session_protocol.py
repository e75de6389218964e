"""The rules of one WDS client connection as a pure state machine (sans-I/O).

Everything a session decides lives here, and nothing here touches a socket, Redis, the event
loop or the clock: client messages, ``now`` and the answers to earlier commands go in; frames to
send (a bounded queue the socket shell drains) and commands (:data:`Command`) come out. So the
rules are unit-tested message by message (``tests/unit/mdp_wds/test_session_protocol.py``), and the
shell (:mod:`mdp_wds.session`) only carries bytes and runs commands. The shape follows the
websockets library's own ``protocol.py``.

The rules:

* **Authentication first.** Nothing is served before ``auth_ok``; a first message that is not a
  valid ``auth`` closes with 4001. A token is checked against ``now``; one of an ended login
  session is refused after a :class:`CheckRevoked` answer. Expiry closes with 4001 when the
  shell's timer (:class:`ExpireAfter`) fires; a refresh moves it and drops the feeds the new
  token no longer grants.
* **Authorization.** A feed must exist in the catalogue and be granted (:mod:`mdp_wds.access`);
  at most ``max_subscriptions`` per connection; ``rate_burst``/``rate_per_second`` messages.
* **Snapshot before updates.** A new subscription's updates are held from the moment it is
  accepted; once the hub has confirmed the Redis subscription (:class:`AddFeeds`), the snapshot
  is read (:class:`ReadSnapshot`, one at a time, in order: resync snapshots queue behind) and
  queued, then the held updates dispatched after the read began (``seq > mark``) are released.
* **Slow clients.** The send queue is bounded in messages and bytes; at the cap the connection
  is closed with 4009 (``disconnect``) or the oldest frames are dropped (``drop_oldest``).
* **Boards as deltas.** For a board subscribed with ``deltas`` the protocol keeps the number of
  the last publication queued (the snapshot's, when the shell's answer can vouch for it). The
  next publication goes as a delta when it directly follows that number, whole otherwise (a gap:
  the client resyncs from it), and not at all when the client already has it
  (:mod:`mdp_wds.deltas`).
* **Projected boards.** A board subscribed (or read with ``get``) with ``fields`` follows the
  board's projection: its snapshot is projected here, its updates and deltas come from the
  hub's tracker of that field set (one per distinct set, at most ``max_field_sets`` a feed:
  beyond, the hub refuses and the subscription is answered ``too_many_field_sets``).
  ``fields`` on a pattern or a feed without rows is answered ``bad_fields``.
* **One request at a time.** A request waiting for an answer keeps :attr:`busy` true; the shell
  reads the next client message only when it is false.
"""

from __future__ import annotations

import enum
import hmac
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from mdp_core.logging import get_logger
from mdp_core.token import TokenClaims, TokenError, TokenExpired, verify_token
from mdp_wds.access import FeedRef, FeedRefused, Grant, resolve_feed
from mdp_wds.bucket import TokenBucket
from mdp_wds.deltas import project_payload
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
from mdp_wds.settings import WdsSettings
from mdp_wds.stats import WdsStats

if TYPE_CHECKING:
    from mdp_wds.hub import BoardFrame, SnapshotItem

__all__ = [
    "AddFeeds",
    "CheckRevoked",
    "Close",
    "Command",
    "ExpireAfter",
    "ReadSnapshot",
    "RemoveFeed",
    "SessionProtocol",
    "SessionState",
]

_log = get_logger(__name__)

_GRANT_ALL: Final = Grant(("*",))
_ABNORMAL_CLOSURE: Final = 1006
#: Malformed requests that only a confused (not a hostile) first message makes.
_CONFUSED: Final = frozenset({"bad_request", "bad_fields"})


# --- commands (out) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddFeeds:
    """Register with the hub for each feed.

    Answer :meth:`SessionProtocol.feeds_added` once every Redis subscription is confirmed (or
    known down), naming the feeds the hub refused (``Hub.add`` raising ``TooManyFieldSets``).
    ``fields``: follow each board's projection on these row fields (None: whole).
    """

    refs: tuple[FeedRef, ...]
    fields: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class RemoveFeed:
    """Unregister from the hub for one feed (no answer)."""

    ref: FeedRef


@dataclass(frozen=True, slots=True)
class ReadSnapshot:
    """Read a feed's current content.

    Note the hub's last dispatched ``seq`` (the mark) just before reading, then answer
    :meth:`SessionProtocol.snapshot_read` with ``ticket``, the mark, the items (``None`` when
    the cache could not be read) and, for a single feed, the number of the board publication
    the item is (``Hub.board_seq`` of the projection on ``fields``; ``None`` when unknown or not
    a board).
    """

    ticket: int
    ref: FeedRef
    limit: int
    fields: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class CheckRevoked:
    """Ask whether a login session has ended; answer :meth:`SessionProtocol.revocation_checked`."""

    session_id: str


@dataclass(frozen=True, slots=True)
class ExpireAfter:
    """Replace the expiry timer.

    Call :meth:`SessionProtocol.expired` after ``seconds`` (``None``: no timer).
    """

    seconds: float | None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket with ``code`` and ``reason`` (the shell bounds the handshake)."""

    code: CloseCode
    reason: str


Command = AddFeeds | RemoveFeed | ReadSnapshot | CheckRevoked | ExpireAfter | Close


class SessionState(enum.Enum):
    """Where a connection is in its life."""

    AWAITING_AUTH = "awaiting_auth"
    OPEN = "open"
    CLOSED = "closed"


# --- snapshot jobs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    """One subscription's snapshot-then-release step (they run one at a time, in order)."""

    ref: FeedRef
    limit: int
    send_snapshot: bool


@dataclass(frozen=True, slots=True)
class _ResyncAll:
    """Expands, when its turn comes, into a job for every subscription held at that moment."""


@dataclass(frozen=True, slots=True)
class _RequestDone:
    """Marks the end of a ``subscribe`` request's jobs: the next client message may be read."""


@dataclass(frozen=True, slots=True)
class _Get:
    """A ``get`` waiting for its snapshot (it does not queue behind subscription snapshots)."""

    request_id: int | None
    ref: FeedRef
    fields: frozenset[str] | None = None


_Step = _Job | _ResyncAll | _RequestDone


@dataclass(slots=True)
class _PendingAuth:
    request: Request
    claims: TokenClaims
    now_seconds: float


@dataclass(slots=True)
class _PendingSubscribe:
    request: Request
    accepted: list[FeedRef]
    fresh: list[FeedRef] = field(default_factory=list)


class SessionProtocol:
    """The state of one client connection and the rules that move it.

    Args:
        settings: Limits and secrets.
        stats: Process counters (violations, disconnects, drops, subscriptions, snapshots).
        now_monotonic: The shell's monotonic clock at accept time (rate limit).
        server_name: ``name/version`` of the server, sent in ``auth_ok``.
        address: The client's address, for logs only.
    """

    def __init__(
        self,
        settings: WdsSettings,
        stats: WdsStats,
        now_monotonic: float,
        *,
        server_name: str,
        address: str | None = None,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._address = address
        self._server_name = server_name
        self._bucket = TokenBucket(settings.rate_per_second, settings.rate_burst, now_monotonic)
        self.state = SessionState.AWAITING_AUTH
        #: The control-plane login session of the token (``sid``), if it names one.
        self.session_id: str | None = None
        self._grant: Grant | None = None
        self._subject = ""
        self._subs: dict[str, FeedRef] = {}
        self._held: dict[str, list[tuple[int, Frame, BoardFrame | None]]] = {}
        #: Boards followed with deltas: the number of the last publication queued (None: the
        #: client's copy is of unknown number, so the next one goes whole).
        self._boards: dict[str, int | None] = {}
        #: Boards followed by projection: the row fields kept.
        self._fields: dict[str, frozenset[str]] = {}
        self._queue: deque[Frame] = deque()
        self._queued_bytes = 0
        self._commands: list[Command] = []
        self._closing = False
        self._busy = False
        self._pending_auth: _PendingAuth | None = None
        self._pending_subscribe: _PendingSubscribe | None = None
        self._steps: deque[_Step] = deque()
        self._job_ticket: int | None = None
        self._jobs: dict[int, _Job] = {}
        self._gets: dict[int, _Get] = {}
        self._tickets = 0

    # --- what the shell reads ---------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Whether the connection is closing or closed: read no more client messages."""
        return self._closing

    @property
    def busy(self) -> bool:
        """Whether a request waits for a command's answer (read the next message after it)."""
        return self._busy

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Names this connection follows, in subscription order."""
        return tuple(self._subs)

    @property
    def queued(self) -> int:
        """Frames waiting in the send queue."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """Bytes of the frames waiting in the send queue."""
        return self._queued_bytes

    def commands(self) -> list[Command]:
        """The commands emitted since the last call, in order (the shell runs each once)."""
        out, self._commands = self._commands, []
        return out

    def take(self, most: int) -> list[Frame]:
        """Remove and return up to ``most`` frames from the head of the send queue."""
        queue = self._queue
        frames: list[Frame] = []
        while queue and len(frames) < most:
            frame = queue.popleft()
            self._queued_bytes -= len(frame.data)
            frames.append(frame)
        return frames

    # --- inputs from the client -------------------------------------------------------------

    def receive(self, raw: str | bytes, *, monotonic: float, now_seconds: float) -> None:
        """One client message, at monotonic time ``monotonic`` and Unix time ``now_seconds``.

        Raises:
            RuntimeError: when called while :attr:`busy` (the shell must wait).
        """
        if self._busy:
            msg = "a request is still waiting for its answer"
            raise RuntimeError(msg)
        if self._closing:
            return
        if not self._admit(monotonic):
            return
        if self.state is SessionState.AWAITING_AUTH:
            self._first(raw, now_seconds)
            return
        try:
            request = decode_request(raw)
        except BadRequest as exc:
            self._stats.violations[exc.kind] += 1
            self._error(exc.request_id, exc.code, exc.message)
            return
        self._dispatch(request, now_seconds)

    def auth_timed_out(self) -> None:
        """The client sent nothing within ``auth_timeout_seconds``."""
        self._violation("auth_timeout")
        self.close(CloseCode.UNAUTHENTICATED, "authentication timeout", "auth_timeout")

    def expired(self) -> None:
        """The token's expiry timer (:class:`ExpireAfter`) fired."""
        if self.state is not SessionState.OPEN:
            return
        self._violation("token_expired")
        self.close(CloseCode.UNAUTHENTICATED, "token expired", "token_expired")

    def connection_ended(self, close_sent: int | None, close_received: int | None) -> None:
        """The socket is gone: release every subscription and count why it ended.

        Args:
            close_sent: The close code this side sent, if any.
            close_received: The close code the peer sent, if any (1006 when the connection
                dropped without one).
        """
        for ref in self._subs.values():
            self._commands.append(RemoveFeed(ref))
        self._stats.client_subscriptions -= len(self._subs)
        self._subs.clear()
        self._held.clear()
        self._boards.clear()
        self._fields.clear()
        self._steps.clear()
        self._jobs.clear()
        self._gets.clear()
        self._job_ticket = None
        self._busy = False
        if not self._closing:
            self._closing = True
            self._stats.disconnects[self._ended_by(close_sent, close_received)] += 1
        self.state = SessionState.CLOSED
        self._queue.clear()
        self._queued_bytes = 0

    def close(self, code: CloseCode, reason: str, why: str) -> None:
        """Close with ``code`` (once), counted as a disconnect ``why``; the queue is discarded."""
        if self._closing:
            return
        self._closing = True
        self._stats.disconnects[why] += 1
        self._queue.clear()
        self._queued_bytes = 0
        self._commands.append(Close(code, reason))

    # --- inputs from the hub and the shell's commands ---------------------------------------

    def deliver(self, key: str, seq: int, frame: Frame, board: BoardFrame | None = None) -> None:
        """An update for subscription ``key`` (hub dispatch number ``seq``).

        ``board``: for a board feed, its publication number and delta (built once for all).
        """
        held = self._held.get(key)
        if held is None:
            self._enqueue_update(key, frame, board)
        elif len(held) < self._settings.send_queue_messages:
            held.append((seq, frame, board))
        else:
            held.pop(0)  # the snapshot that follows supersedes it anyway
            held.append((seq, frame, board))
            self._stats.drops["held_overflow"] += 1

    def resync(self) -> None:
        """The pub/sub link had a gap: re-send every subscription's snapshot."""
        if self._closing or not self._subs:
            return
        for name in self._subs:
            self._held.setdefault(name, [])
        if not any(isinstance(step, _ResyncAll) for step in self._steps):
            # One still waiting for its turn reads every snapshot after this gap already.
            self._steps.append(_ResyncAll())
        self._advance()

    def revocation_checked(self, revoked: bool) -> None:
        """Answer to :class:`CheckRevoked`."""
        pending, self._pending_auth = self._pending_auth, None
        self._busy = False
        if pending is None or self._closing:
            return
        if revoked:
            self._violation("token_revoked")
            self.close(CloseCode.UNAUTHENTICATED, "session ended", "session_revoked")
            return
        claims = pending.claims
        self.session_id = claims.session_id
        self._authenticated(
            pending.request, Grant.of(claims.feeds), claims.subject, claims.expires_at,
            pending.now_seconds,
        )  # fmt: skip

    def feeds_added(self, refused: Collection[str] = ()) -> None:
        """Answer to :class:`AddFeeds`: the hub confirmed (or queued) every subscription.

        ``refused``: feeds the hub did not register (their feed has too many field sets).
        """
        pending, self._pending_subscribe = self._pending_subscribe, None
        if pending is None:
            return
        if refused:
            cap = "the feed is followed with too many field sets"
            for name in refused:
                if name not in self._subs:
                    continue
                self._forget(name)
                self._violation("too_many_field_sets")
                self._error(
                    pending.request.id,
                    ErrorCode.TOO_MANY_FIELD_SETS,
                    f"{cap}; {name!r} refused: subscribe with the fields of another client",
                )
            pending.accepted = [ref for ref in pending.accepted if ref.name in self._subs]
            pending.fresh = [ref for ref in pending.fresh if ref.name in self._subs]
        self._subscribed(pending)

    def snapshot_read(
        self,
        ticket: int,
        mark: int,
        items: Sequence[SnapshotItem] | None,
        board_seq: int | None = None,
    ) -> None:
        """Answer to :class:`ReadSnapshot`; ``items`` is ``None`` when the cache failed.

        ``board_seq``: the number of the board publication a single feed's item is, if known.
        """
        get = self._gets.pop(ticket, None)
        if get is not None:
            self._busy = False
            self._got(get, items, board_seq)
            return
        job = self._jobs.pop(ticket, None)
        if job is None:
            return
        self._job_ticket = None
        name = job.ref.name
        if items is None:
            items = []
            self._error(
                None, ErrorCode.UNAVAILABLE, f"no snapshot for {name!r} now; it will follow"
            )
        if name in self._subs and not self._closing:
            fields = self._fields.get(name)
            for item in items:
                data = self._projected(job.ref, item.data, fields)
                self._enqueue(self._snapshot(item.feed, data, None, board_seq))
                self._stats.snapshots_out += 1
            self._release(name, mark)
        self._advance()

    # --- authentication ---------------------------------------------------------------------

    def _first(self, raw: str | bytes, now_seconds: float) -> None:
        try:
            request: Request | None = decode_request(raw)
        except BadRequest as exc:
            if exc.kind not in _CONFUSED:
                self._violation(exc.kind)  # hostile rather than confused: counted as such
                self.close(CloseCode.UNAUTHENTICATED, "authenticate first", exc.kind)
                return
            request = None
        if request is None or request.op != "auth":
            self._violation("unauthenticated")
            self.close(CloseCode.UNAUTHENTICATED, "authenticate first", "unauthenticated")
            return
        self._authenticate(request, now_seconds)

    def _authenticate(self, request: Request, now_seconds: float) -> None:
        secret = self._settings.token_secret
        dev_key = self._settings.dev_key
        if request.token is not None and secret is not None:
            try:
                claims = verify_token(secret.reveal(), request.token, now_seconds)
            except TokenError as exc:
                expired = isinstance(exc, TokenExpired)
                self._violation("token_expired" if expired else f"token_{exc.kind}")
                message = "token expired" if expired else "invalid token"
                why = "token_expired" if expired else "bad_token"
                self.close(CloseCode.UNAUTHENTICATED, message, why)
                return
            if claims.session_id is not None:
                self._pending_auth = _PendingAuth(request, claims, now_seconds)
                self._busy = True
                self._commands.append(CheckRevoked(claims.session_id))
                return
            self.session_id = None
            grant = Grant.of(claims.feeds)
            self._authenticated(request, grant, claims.subject, claims.expires_at, now_seconds)
        elif (
            request.key is not None
            and dev_key is not None
            and hmac.compare_digest(request.key.encode(), dev_key.reveal().encode())
        ):
            self._authenticated(request, _GRANT_ALL, "dev-key", None, now_seconds)
        else:
            self._violation("bad_credentials")
            self.close(CloseCode.UNAUTHENTICATED, "invalid credentials", "bad_token")

    def _authenticated(
        self,
        request: Request,
        grant: Grant,
        subject: str,
        expires_at: int | None,
        now_seconds: float,
    ) -> None:
        self._grant, self._subject = grant, subject
        self.state = SessionState.OPEN
        delay = None if expires_at is None else max(0.0, expires_at - now_seconds)
        self._commands.append(ExpireAfter(delay))
        self._revoke_ungranted(request.id)
        self._send(
            encode_message(
                "auth_ok",
                request.id,
                expires_at=expires_at,
                feeds=list(grant.patterns),
                server=self._server_name,
            )
        )

    def _revoke_ungranted(self, request_id: int | None) -> None:
        """After a refresh, drop subscriptions the new token no longer grants."""
        grant = self._grant
        assert grant is not None
        for name, ref in list(self._subs.items()):
            if not grant.allows(name):
                self._drop(name, ref)
                self._error(
                    request_id, ErrorCode.FORBIDDEN_FEED, f"the new token does not grant {name!r}"
                )

    # --- requests ---------------------------------------------------------------------------

    def _dispatch(self, request: Request, now_seconds: float) -> None:
        if request.op == "ping":
            self._send(encode_message("pong", request.id))
        elif request.op == "auth":
            self._authenticate(request, now_seconds)
        elif request.op == "subscribe":
            self._subscribe(request)
        elif request.op == "unsubscribe":
            self._unsubscribe(request)
        else:
            self._get(request)

    def _limit(self, request: Request) -> int:
        wanted = request.limit or self._settings.snapshot_limit_default
        return min(wanted, self._settings.snapshot_limit_max)

    def _authorize(self, name: str) -> FeedRef:
        ref = resolve_feed(name)
        assert self._grant is not None
        self._grant.check(ref)
        return ref

    def _subscribe(self, request: Request) -> None:
        accepted: list[FeedRef] = []
        cap = self._settings.max_subscriptions
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
            if request.fields is not None and not self._fields_apply(request.id, ref):
                continue
            if len(self._subs) >= cap:
                self._violation("too_many_subscriptions")
                self._error(
                    request.id,
                    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                    f"at most {cap} subscriptions per connection; {name!r} refused",
                )
                continue
            self._subs[name] = ref
            self._held[name] = []
            if request.deltas and ref.feed.delta_key is not None and not ref.is_pattern:
                self._boards[name] = None
            if request.fields is not None:
                self._fields[name] = request.fields
            self._stats.client_subscriptions += 1
            accepted.append(ref)
        pending = _PendingSubscribe(request, accepted)
        pending.fresh = [ref for ref in accepted if ref.name in self._held]
        if not pending.fresh:
            self._subscribed(pending)
            return
        self._pending_subscribe = pending
        self._busy = True
        self._commands.append(AddFeeds(tuple(pending.fresh), request.fields))

    def _subscribed(self, pending: _PendingSubscribe) -> None:
        if self._closing:
            self._busy = False
            return
        request = pending.request
        self._send(
            encode_message("subscribed", request.id, feeds=[ref.name for ref in pending.accepted])
        )
        limit = self._limit(request)
        self._steps.extend(_Job(ref, limit, request.snapshot) for ref in pending.fresh)
        self._steps.append(_RequestDone())
        self._busy = True
        self._advance()

    def _unsubscribe(self, request: Request) -> None:
        removed: list[str] = []
        for name in request.feeds:
            ref = self._subs.get(name)
            if ref is not None:
                self._drop(name, ref)
                removed.append(name)
        self._send(encode_message("unsubscribed", request.id, feeds=removed))

    def _drop(self, name: str, ref: FeedRef) -> None:
        self._forget(name)
        self._commands.append(RemoveFeed(ref))

    def _forget(self, name: str) -> None:
        """Drop a subscription's state (the hub is told apart, if it registered it)."""
        del self._subs[name]
        self._held.pop(name, None)
        self._boards.pop(name, None)
        self._fields.pop(name, None)
        self._stats.client_subscriptions -= 1

    def _fields_apply(self, request_id: int | None, ref: FeedRef) -> bool:
        """Whether ``fields`` may project ``ref`` (a board by name); else answer ``bad_fields``."""
        if ref.feed.delta_key is not None and not ref.is_pattern:
            return True
        self._violation("bad_fields")
        self._error(
            request_id,
            ErrorCode.BAD_FIELDS,
            f"'fields' applies to a board (a feed of rows) by name; {ref.name!r} is not one",
        )
        return False

    @staticmethod
    def _projected(ref: FeedRef, data: bytes, fields: frozenset[str] | None) -> bytes:
        if fields is None:
            return data
        key = ref.feed.delta_key
        assert key is not None  # ``fields`` are only accepted for boards
        return project_payload(data, key, fields)

    def _get(self, request: Request) -> None:
        assert request.feed is not None
        try:
            ref = self._authorize(request.feed)
        except FeedRefused as exc:
            self._violation(exc.code.value)
            self._error(request.id, exc.code, exc.message)
            return
        if request.fields is not None and not self._fields_apply(request.id, ref):
            return
        ticket = self._ticket()
        self._gets[ticket] = _Get(request.id, ref, request.fields)
        self._busy = True
        self._commands.append(ReadSnapshot(ticket, ref, self._limit(request), request.fields))

    def _got(self, get: _Get, items: Sequence[SnapshotItem] | None, board_seq: int | None) -> None:
        if items is None:
            self._error(get.request_id, ErrorCode.UNAVAILABLE, "the cache is unavailable; retry")
            return
        if get.fields != self._fields.get(get.ref.name):
            board_seq = None  # not the projection the deltas follow: the next update goes whole
        if not items:  # a pattern that matches nothing: answered all the same, with null
            self._enqueue(snapshot_frame(get.ref.name, b"null", get.request_id))
            self._stats.snapshots_out += 1
        for item in items:
            data = self._projected(get.ref, item.data, get.fields)
            self._enqueue(self._snapshot(item.feed, data, get.request_id, board_seq))
            self._stats.snapshots_out += 1

    def _snapshot(
        self, name: str, data: bytes, request_id: int | None, board_seq: int | None
    ) -> Frame:
        """A snapshot frame; for a board followed with deltas, numbered when the shell knows it."""
        if name not in self._boards:
            return snapshot_frame(name, data, request_id)
        self._boards[name] = board_seq
        return snapshot_frame(name, data, request_id, board=True, seq=board_seq)

    # --- snapshot jobs ----------------------------------------------------------------------

    def _ticket(self) -> int:
        self._tickets += 1
        return self._tickets

    def _advance(self) -> None:
        """Start the next snapshot job unless one is being read (they run one at a time)."""
        steps = self._steps
        while self._job_ticket is None and steps:
            step = steps.popleft()
            if isinstance(step, _RequestDone):
                self._busy = False
            elif self._closing:
                continue
            elif isinstance(step, _ResyncAll):
                limit = self._settings.snapshot_limit_default
                steps.extendleft(_Job(ref, limit, True) for ref in reversed(self._subs.values()))
            elif step.send_snapshot:
                ticket = self._ticket()
                self._jobs[ticket] = step
                self._job_ticket = ticket
                fields = self._fields.get(step.ref.name)
                self._commands.append(ReadSnapshot(ticket, step.ref, step.limit, fields))
            else:
                # Every held update was dispatched before now (seq <= the hub's last): with no
                # snapshot asked for, the client starts with what comes next.
                self._held.pop(step.ref.name, None)

    def _release(self, name: str, mark: int) -> None:
        held = self._held.pop(name, None)
        if held is not None:
            for seq, frame, board in held:
                if seq > mark:
                    self._enqueue_update(name, frame, board)

    def _enqueue_update(self, key: str, frame: Frame, board: BoardFrame | None) -> None:
        """Queue a publication: its delta, the whole of it, or nothing (the client has it)."""
        if board is None or key not in self._boards:
            self._enqueue(frame)
            return
        last = self._boards[key]
        if last is not None and board.seq <= last:
            return  # the client's copy already is this publication (or a later one)
        self._boards[key] = board.seq
        if board.delta is not None and last == board.seq - 1:
            self._stats.deltas_out += 1
            self._enqueue(board.delta)
        else:
            self._enqueue(frame)

    # --- sending ----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._enqueue(Frame(data))

    def _error(self, request_id: int | None, code: ErrorCode, message: str) -> None:
        self._send(encode_message("error", request_id, code=code.value, message=message))

    def _enqueue(self, frame: Frame) -> None:
        if self._closing:
            return
        size = len(frame.data)
        settings = self._settings
        queue = self._queue
        while queue and (
            len(queue) >= settings.send_queue_messages
            or self._queued_bytes + size > settings.send_queue_bytes
        ):
            if settings.slow_client_policy == "disconnect":
                self._violation("too_slow")
                self.close(CloseCode.TOO_SLOW, "too slow: send queue overflow", "too_slow")
                return
            dropped = queue.popleft()
            self._queued_bytes -= len(dropped.data)
            self._stats.drops["queue_full"] += 1
        queue.append(frame)
        self._queued_bytes += size

    # --- accounting -------------------------------------------------------------------------

    def _admit(self, monotonic: float) -> bool:
        if self._bucket.take(monotonic):
            return True
        self._violation("rate_limited")
        self.close(CloseCode.RATE_LIMITED, "rate limit exceeded", "rate_limited")
        return False

    def _violation(self, reason: str) -> None:
        self._stats.violations[reason] += 1
        _log.info(
            "wds_client_violation",
            reason=reason,
            subject=self._subject or None,
            address=self._address,
        )

    def _ended_by(self, close_sent: int | None, close_received: int | None) -> str:
        """Why a connection this side did not close ended (a metric label)."""
        if close_sent == CloseCode.GOING_AWAY:
            return "shutdown"
        if close_sent == CloseCode.FRAME_TOO_BIG:
            self._violation("frame_too_big")
            return "frame_too_big"
        if close_received is None or close_received == _ABNORMAL_CLOSURE:
            return "connection_lost"
        return "client_closed"
