"""The WDS session rules without a socket: messages and answers in, frames and commands out.

A :class:`Shell` plays the socket shell and the hub by hand (commands are answered only when the
test says), so every interleaving the real shell can produce is reachable, and Hypothesis drives
whole message sequences against the invariants of ``docs/reference/wds-protocol.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from fnmatch import fnmatchcase
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from mdp_core.settings import Secret, load
from mdp_core.token import issue_token
from mdp_wds.access import FeedRef, resolve_feed
from mdp_wds.deltas import BoardTracker, apply_delta, project
from mdp_wds.hub import BoardFrame, SnapshotItem
from mdp_wds.protocol import MAX_FIELDS, CloseCode, Frame, delta_frame, update_frame
from mdp_wds.session_protocol import (
    AddFeeds,
    CheckRevoked,
    Close,
    Command,
    ExpireAfter,
    ReadSnapshot,
    RemoveFeed,
    SessionProtocol,
    SessionState,
)
from mdp_wds.settings import WdsSettings
from mdp_wds.stats import WdsStats

SECRET = "unit-secret"
DEV_KEY = "unit-dev-key"
NOW = 1_800_000_000.0
SERVER = "mdp-wds/test"


def make_settings(**overrides: Any) -> WdsSettings:
    values: dict[str, Any] = {
        "token_secret": Secret(SECRET),
        "dev_key": Secret(DEV_KEY),
        "max_subscriptions": 3,
        "rate_burst": 10_000,
        "rate_per_second": 10_000.0,
        "send_queue_messages": 1_000,
        "send_queue_bytes": 1 << 20,
        "snapshot_limit_default": 7,
        "snapshot_limit_max": 20,
    }
    values.update(overrides)
    return load(WdsSettings, environ={}, **values)


def token(
    feeds: list[str] | None = None, ttl: float = 300, *, now: float = NOW, sid: str | None = None
) -> str:
    return issue_token(SECRET, "tester", feeds or ["*"], ttl, now, session_id=sid)


class Shell:
    """The socket shell and the hub, played by hand."""

    def __init__(self, stats: WdsStats | None = None, **overrides: Any) -> None:
        self.settings = make_settings(**overrides)
        self.stats = stats if stats is not None else WdsStats()
        self.protocol = SessionProtocol(
            self.settings, self.stats, 0.0, server_name=SERVER, address="192.0.2.7"
        )
        self.monotonic = 0.0
        self.now = NOW
        self.frames: list[dict[str, Any]] = []
        self.closes: list[Close] = []
        self.pending: list[AddFeeds | ReadSnapshot | CheckRevoked] = []
        self.marks: dict[int, int] = {}
        self.hub: dict[str, FeedRef] = {}
        self.removed: list[str] = []
        self.expiry: list[float | None] = []
        self.store: dict[str, bytes] = {}
        self.seq = 0

    # --- driving --------------------------------------------------------------------------

    def send(
        self, message: dict[str, Any] | str | bytes, *, step: float = 0.0
    ) -> list[dict[str, Any]]:
        self.monotonic += step
        raw = message if isinstance(message, str | bytes) else json.dumps(message)
        self.protocol.receive(raw, monotonic=self.monotonic, now_seconds=self.now)
        return self.collect()

    def auth(self, feeds: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        out = self.send({"op": "auth", "id": 1, "token": token(feeds, **kwargs)})
        self.settle()
        return out[-1] if out else (self.frames[-1] if self.frames else {})

    def collect(self) -> list[dict[str, Any]]:
        """Run the commands emitted so far; return the frames queued, in order."""
        for command in self.protocol.commands():
            self.command(command)
        frames = [json.loads(frame.data) for frame in self.protocol.take(10**6)]
        self.frames.extend(frames)
        return frames

    def command(self, command: Command) -> None:
        if isinstance(command, RemoveFeed):
            self.hub.pop(command.ref.name, None)
            self.removed.append(command.ref.name)
        elif isinstance(command, ExpireAfter):
            self.expiry.append(command.seconds)
        elif isinstance(command, Close):
            self.closes.append(command)
        else:
            if isinstance(command, AddFeeds):  # the hub registers before Redis confirms
                for ref in command.refs:
                    self.hub[ref.name] = ref
            if isinstance(command, ReadSnapshot):
                self.marks[command.ticket] = self.seq
            self.pending.append(command)

    def answer(self, index: int = 0, *, revoked: bool = False, unavailable: bool = False) -> None:
        command = self.pending.pop(index)
        if isinstance(command, AddFeeds):
            self.protocol.feeds_added()
        elif isinstance(command, CheckRevoked):
            self.protocol.revocation_checked(revoked)
        else:
            items = None if unavailable else self.read(command.ref, command.limit)
            self.protocol.snapshot_read(command.ticket, self.marks.pop(command.ticket), items)

    def read(self, ref: FeedRef, limit: int) -> list[SnapshotItem]:
        if ref.is_pattern:
            names = sorted(n for n in self.store if ref.feed.matches(n))[:limit]
            return [SnapshotItem(n, self.store[n]) for n in names]
        return [SnapshotItem(ref.name, self.store.get(ref.name, b"null"))]

    def settle(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.pending:
            self.answer()
            out += self.collect()
        return out

    def publish(self, feed: str) -> list[dict[str, Any]]:
        self.seq += 1
        payload = json.dumps({"seq": self.seq}).encode()
        self.store[feed] = payload
        if feed in self.hub:
            self.protocol.deliver(feed, self.seq, update_frame(feed, payload))
        return self.collect()


def busy(shell: Shell) -> bool:
    """Read afresh (a plain attribute read would be narrowed by an earlier assert)."""
    value = shell.protocol.busy
    assert isinstance(value, bool)
    return value


def ops(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["op"] for frame in frames]


def authed(**overrides: Any) -> Shell:
    shell = Shell(**overrides)
    assert shell.auth()["op"] == "auth_ok"
    return shell


# --- authentication ---------------------------------------------------------------------------


def test_auth_ok_names_the_grant_expiry_and_server() -> None:
    shell = Shell()
    reply = shell.auth(["quote:*", "", "news:latest"], ttl=60)
    assert reply == {
        "op": "auth_ok",
        "id": 1,
        "expires_at": int(NOW) + 60,
        "feeds": ["quote:*", "news:latest"],
        "server": SERVER,
    }
    assert shell.protocol.state is SessionState.OPEN
    assert shell.protocol.closing is False
    assert shell.expiry == [60.0]


@pytest.mark.parametrize(
    "first",
    [
        {"op": "subscribe", "feeds": ["quote:AAPL"]},
        {"op": "ping"},
        {"op": "get", "feed": "quote:AAPL"},
        "not json",
        {"op": "auth"},
    ],
)
def test_nothing_is_served_before_auth(first: dict[str, Any] | str) -> None:
    shell = Shell()
    assert shell.send(first) == []
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, "authenticate first")]
    assert shell.stats.violations == Counter(unauthenticated=1)
    assert shell.stats.disconnects == Counter(unauthenticated=1)
    assert shell.pending == []
    assert shell.hub == {}
    assert shell.protocol.closing
    assert shell.send({"op": "auth", "token": token()}) == []  # closing: nothing more
    assert len(shell.closes) == 1


def test_a_too_deep_first_message_is_counted_as_itself() -> None:
    shell = Shell()
    shell.send("[" * 5000 + "]" * 5000)
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, "authenticate first")]
    assert shell.stats.violations == Counter(too_deep=1)
    assert shell.stats.disconnects == Counter(too_deep=1)


def test_auth_timeout_closes_4001() -> None:
    shell = Shell()
    shell.protocol.auth_timed_out()
    shell.collect()
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, "authentication timeout")]
    assert shell.stats.violations == Counter(auth_timeout=1)
    assert shell.stats.disconnects == Counter(auth_timeout=1)


@pytest.mark.parametrize(
    ("message", "reason", "violation", "why"),
    [
        (
            {"token": token(ttl=60, now=NOW - 120)},
            "token expired",
            "token_expired",
            "token_expired",
        ),
        ({"token": token(ttl=60, now=NOW - 60)}, "token expired", "token_expired", "token_expired"),
        ({"token": token() + "x"}, "invalid token", "token_bad_signature", "bad_token"),
        ({"token": "garbage"}, "invalid token", "token_malformed", "bad_token"),
        ({"key": "wrong"}, "invalid credentials", "bad_credentials", "bad_token"),
        ({"key": DEV_KEY + "x"}, "invalid credentials", "bad_credentials", "bad_token"),
    ],
)
def test_bad_credentials_close_4001(
    message: dict[str, str], reason: str, violation: str, why: str
) -> None:
    shell = Shell()
    assert shell.send({"op": "auth", **message}) == []
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, reason)]
    assert shell.stats.violations == Counter({violation: 1})
    assert shell.stats.disconnects == Counter({why: 1})
    assert shell.protocol.state is SessionState.AWAITING_AUTH


def test_a_token_valid_one_second_before_expiry_is_accepted() -> None:
    shell = Shell()
    assert shell.auth(ttl=60, now=NOW - 59)["op"] == "auth_ok"
    assert shell.expiry == [1.0]


def test_the_expiry_timer_counts_from_now_to_the_second() -> None:
    shell = Shell()
    shell.now = NOW + 59.75  # the token's expiry is whole seconds; now need not be
    assert shell.auth(ttl=60)["op"] == "auth_ok"
    assert shell.expiry == [0.25]


def test_a_violation_is_logged_with_reason_subject_and_address() -> None:
    shell = authed()
    with structlog.testing.capture_logs() as logs:
        shell.send({"op": "subscribe", "feeds": ["nope"]})
    assert logs == [
        {
            "event": "wds_client_violation",
            "log_level": "info",
            "reason": "unknown_feed",
            "subject": "tester",
            "address": "192.0.2.7",
        }
    ]
    shell = Shell()
    with structlog.testing.capture_logs() as logs:
        shell.send("{}")
    assert [(log["reason"], log["subject"]) for log in logs] == [("unauthenticated", None)]


def test_dev_key_grants_everything_and_never_expires() -> None:
    shell = Shell()
    reply = shell.send({"op": "auth", "key": DEV_KEY})
    assert reply == [{"op": "auth_ok", "expires_at": None, "feeds": ["*"], "server": SERVER}]
    assert shell.expiry == [None]


def test_a_token_is_refused_when_no_secret_is_configured() -> None:
    shell = Shell(token_secret=None)
    shell.send({"op": "auth", "token": token()})
    assert shell.stats.violations == Counter(bad_credentials=1)


def test_the_dev_key_is_refused_when_none_is_configured() -> None:
    shell = Shell(dev_key=None)
    shell.send({"op": "auth", "key": DEV_KEY})
    assert shell.stats.violations == Counter(bad_credentials=1)


def test_a_session_token_waits_for_the_revocation_check() -> None:
    shell = Shell()
    assert shell.send({"op": "auth", "token": token(sid="s-1")}) == []
    assert shell.pending == [CheckRevoked("s-1")]
    assert busy(shell)
    with pytest.raises(RuntimeError, match=r"^a request is still waiting for its answer$"):
        shell.send({"op": "ping"})
    shell.answer(revoked=False)
    assert ops(shell.collect()) == ["auth_ok"]
    assert shell.protocol.session_id == "s-1"
    assert not busy(shell)


def test_a_session_token_s_grant_subject_and_expiry_hold_after_the_check() -> None:
    shell = Shell()
    shell.send({"op": "auth", "id": 2, "token": token(["quote:*"], ttl=90, sid="s-1")})
    shell.answer(revoked=False)
    assert shell.collect() == [
        {
            "op": "auth_ok",
            "id": 2,
            "expires_at": int(NOW) + 90,
            "feeds": ["quote:*"],
            "server": SERVER,
        }
    ]
    assert shell.expiry == [90.0]
    with structlog.testing.capture_logs() as logs:
        shell.send({"op": "subscribe", "feeds": ["news:latest"]})
    assert [(log["reason"], log["subject"]) for log in logs] == [("forbidden_feed", "tester")]
    # A refresh with a token of no login session forgets the old one.
    shell.send({"op": "auth", "token": token()})
    assert shell.protocol.session_id is None


def test_a_token_of_an_ended_session_is_refused() -> None:
    shell = Shell()
    shell.send({"op": "auth", "token": token(sid="s-1")})
    shell.answer(revoked=True)
    assert shell.collect() == []
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, "session ended")]
    assert shell.stats.violations == Counter(token_revoked=1)
    assert shell.stats.disconnects == Counter(session_revoked=1)
    assert shell.protocol.session_id is None
    assert not busy(shell)


def test_a_revocation_answer_after_close_serves_nothing() -> None:
    shell = Shell()
    shell.send({"op": "auth", "token": token(sid="s-1")})
    shell.protocol.close(CloseCode.GOING_AWAY, "bye", "shutdown")
    shell.answer(revoked=False)
    assert shell.collect() == []
    assert shell.protocol.session_id is None
    assert shell.protocol.state is SessionState.AWAITING_AUTH


def test_expiry_mid_session_closes_4001() -> None:
    shell = authed()
    shell.protocol.expired()
    shell.collect()
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, "token expired")]
    assert shell.stats.violations == Counter(token_expired=1)
    assert shell.stats.disconnects == Counter(token_expired=1)
    assert shell.publish("quote:AAPL") == []


def test_an_expiry_timer_before_auth_does_nothing() -> None:
    shell = Shell()
    shell.protocol.expired()
    assert shell.collect() == []
    assert shell.closes == []


def test_refresh_moves_expiry_and_drops_feeds_the_new_token_does_not_grant() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "id": 2, "feeds": ["quote:AAPL", "news:latest"]})
    shell.settle()
    shell.now += 100
    out = shell.send({"op": "auth", "id": 3, "token": token(["news:*"], ttl=50, now=shell.now)})
    assert out[0] == {
        "op": "error",
        "id": 3,
        "code": "forbidden_feed",
        "message": "the new token does not grant 'quote:AAPL'",
    }
    assert out[1]["op"] == "auth_ok"
    assert out[1]["feeds"] == ["news:*"]
    assert shell.protocol.subscriptions == ("news:latest",)
    assert shell.removed == ["quote:AAPL"]
    assert shell.expiry == [300.0, 50.0]
    assert shell.stats.client_subscriptions == 1
    assert shell.publish("quote:AAPL") == []


# --- requests ---------------------------------------------------------------------------------


def test_ping_answers_pong_with_the_id() -> None:
    shell = authed()
    assert shell.send({"op": "ping", "id": 9}) == [{"op": "pong", "id": 9}]
    assert shell.send({"op": "ping"}) == [{"op": "pong"}]


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("not json", "bad_request"),
        ('{"op":"nope","id":4}', "bad_request"),
        ('{"op":["auth"]}', "bad_request"),  # not hashable: was a TypeError, closed 1011
        ('{"op":{}}', "bad_request"),
        (b'{"op":"\xff"}', "bad_request"),  # a binary frame, not UTF-8: was an escape too
        (b'{"op":"ping","id":1,"x":"\xff"}', "bad_request"),
        ("[" * 5000 + "]" * 5000, "too_deep"),
    ],
)
def test_bad_requests_after_auth_get_an_error_and_are_counted(raw: str | bytes, kind: str) -> None:
    shell = authed()
    out = shell.send(raw)
    assert len(out) == 1
    assert out[0]["op"] == "error"
    assert out[0]["code"] == "bad_request"
    assert shell.stats.violations == Counter({kind: 1})
    assert shell.closes == []
    assert shell.send({"op": "ping", "id": 5}) == [{"op": "pong", "id": 5}]


def test_the_rate_limit_closes_4008_at_the_burst() -> None:
    shell = Shell(rate_burst=3, rate_per_second=1.0)
    shell.auth()
    assert shell.send({"op": "ping"}) == [{"op": "pong"}]
    assert shell.send({"op": "ping"}) == [{"op": "pong"}]
    assert shell.send({"op": "ping"}) == []
    assert shell.closes == [Close(CloseCode.RATE_LIMITED, "rate limit exceeded")]
    assert shell.stats.violations == Counter(rate_limited=1)
    assert shell.stats.disconnects == Counter(rate_limited=1)


def test_the_rate_limit_refills_with_monotonic_time() -> None:
    shell = Shell(rate_burst=1, rate_per_second=1.0)
    shell.auth()
    assert shell.send({"op": "ping"}, step=1.0) == [{"op": "pong"}]
    assert shell.send({"op": "ping"}, step=0.5) == []
    assert shell.stats.violations == Counter(rate_limited=1)


def test_subscribe_confirms_then_snapshots_then_streams() -> None:
    shell = authed()
    shell.store["quote:AAPL"] = b'{"p":1}'
    assert shell.send({"op": "subscribe", "id": 2, "feeds": ["quote:AAPL"]}) == []
    assert shell.pending == [AddFeeds((resolve_feed("quote:AAPL"),))]
    assert busy(shell)
    assert shell.publish("quote:AAPL") == []  # held: Redis may not even have confirmed
    shell.answer()
    assert shell.collect() == [{"op": "subscribed", "id": 2, "feeds": ["quote:AAPL"]}]
    assert shell.pending == [ReadSnapshot(1, resolve_feed("quote:AAPL"), 7)]
    assert busy(shell)
    shell.publish("quote:AAPL")  # seq 2: after the read began, held for release
    shell.answer()
    assert shell.collect() == [
        {"op": "snapshot", "feed": "quote:AAPL", "data": {"seq": 2}},
        {"op": "update", "feed": "quote:AAPL", "data": {"seq": 2}},
    ]
    assert not busy(shell)
    assert shell.publish("quote:AAPL") == [
        {"op": "update", "feed": "quote:AAPL", "data": {"seq": 3}}
    ]
    assert shell.stats.snapshots_out == 1
    assert shell.stats.client_subscriptions == 1


def test_updates_dispatched_before_the_mark_are_not_released() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"]})
    shell.publish("quote:AAPL")  # seq 1, held
    shell.answer()  # confirmed; the read begins at mark 1
    shell.collect()
    shell.answer()
    assert ops(shell.collect()) == ["snapshot"]


def test_subscribe_without_snapshot_streams_what_comes_next_only() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"], "snapshot": False})
    shell.publish("quote:AAPL")  # before the subscription was confirmed: not sent
    shell.answer()
    assert ops(shell.collect()) == ["subscribed"]
    assert shell.pending == []
    assert not busy(shell)
    assert ops(shell.publish("quote:AAPL")) == ["update"]


def test_the_limit_is_the_request_s_capped_by_the_maximum() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["news:latest"], "limit": 3})
    shell.answer()
    shell.collect()
    assert shell.pending == [ReadSnapshot(1, resolve_feed("news:latest"), 3)]
    shell.answer()
    shell.collect()
    shell.send({"op": "get", "feed": "news:latest", "limit": 21})
    assert shell.pending == [ReadSnapshot(2, resolve_feed("news:latest"), 20)]
    shell.answer()
    shell.send({"op": "get", "feed": "news:latest", "limit": 20})
    assert shell.pending == [ReadSnapshot(3, resolve_feed("news:latest"), 20)]


def test_resubscribing_is_accepted_without_a_second_snapshot() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "id": 1, "feeds": ["quote:AAPL"]})
    shell.settle()
    out = shell.send({"op": "subscribe", "id": 2, "feeds": ["quote:AAPL"]})
    assert out == [{"op": "subscribed", "id": 2, "feeds": ["quote:AAPL"]}]
    assert shell.pending == []
    assert not busy(shell)
    assert shell.stats.client_subscriptions == 1


def test_a_followed_feed_in_a_longer_list_does_not_stop_the_rest() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A"]})
    shell.settle()
    shell.send({"op": "subscribe", "id": 2, "feeds": ["quote:A", "quote:B", "quote:C"]})
    out = shell.settle()
    assert out[0] == {"op": "subscribed", "id": 2, "feeds": ["quote:A", "quote:B", "quote:C"]}
    assert [m["feed"] for m in out[1:]] == ["quote:B", "quote:C"]  # snapshots of the new ones
    assert shell.stats.snapshots_out == 3
    assert shell.stats.client_subscriptions == 3
    shell.send({"op": "unsubscribe", "feeds": ["quote:B"]})
    assert shell.stats.client_subscriptions == 2


def test_counters_add_up_over_repeated_events() -> None:
    stats = WdsStats()
    for _ in range(2):
        shell = Shell(stats)
        shell.auth()
        shell.send({"op": "subscribe", "feeds": ["nope"]})
        shell.send({"op": "get", "feed": "nope"})
        shell.send("{")
        shell.send("{")
        shell.protocol.connection_ended(None, 1006)
    assert stats.violations == Counter(unknown_feed=4, bad_request=4)
    assert stats.disconnects == Counter(connection_lost=2)
    for _ in range(2):
        shell = Shell(stats)
        shell.send("{")
    assert stats.disconnects == Counter(connection_lost=2, unauthenticated=2)


def test_the_subscription_cap_refuses_the_one_past_it() -> None:
    shell = authed(max_subscriptions=2)
    out = shell.send({"op": "subscribe", "id": 4, "feeds": ["quote:A", "quote:B", "quote:C"]})
    assert out == [
        {
            "op": "error",
            "id": 4,
            "code": "too_many_subscriptions",
            "message": "at most 2 subscriptions per connection; 'quote:C' refused",
        }
    ]
    assert shell.protocol.subscriptions == ("quote:A", "quote:B")
    assert shell.stats.violations == Counter(too_many_subscriptions=1)
    out = shell.settle()
    assert out[0] == {"op": "subscribed", "id": 4, "feeds": ["quote:A", "quote:B"]}
    shell.send({"op": "unsubscribe", "feeds": ["quote:A"]})
    shell.send({"op": "subscribe", "feeds": ["quote:C"]})
    assert shell.protocol.subscriptions == ("quote:B", "quote:C")


@pytest.mark.parametrize(
    ("grant", "feed", "code"),
    [
        (["quote:AA"], "quote:AAPL", "forbidden_feed"),  # a prefix grants nothing more
        (["quote"], "quote:AAPL", "forbidden_feed"),
        (["quote:AAPL"], "quote:*", "forbidden_feed"),
        (["*"], "mdp:heartbeat:wds:1", "forbidden_feed"),
        (["*"], "nope", "unknown_feed"),
    ],
)
def test_refused_feeds_get_an_error_and_no_subscription(
    grant: list[str], feed: str, code: str
) -> None:
    shell = Shell()
    shell.auth(grant)
    out = shell.send({"op": "subscribe", "id": 6, "feeds": [feed]})
    assert out[0]["op"] == "error"
    assert out[0]["code"] == code
    assert out[0]["id"] == 6
    assert out[1] == {"op": "subscribed", "id": 6, "feeds": []}
    assert shell.protocol.subscriptions == ()
    assert shell.hub == {}
    assert shell.stats.violations == Counter({code: 1})
    out = shell.send({"op": "get", "id": 7, "feed": feed})
    assert [(m["op"], m["code"], m["id"]) for m in out] == [("error", code, 7)]
    assert feed in out[0]["message"]
    assert shell.stats.violations == Counter({code: 2})
    assert shell.pending == []
    assert not busy(shell)


def test_unsubscribe_stops_updates_and_names_what_it_removed() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL", "news:latest"]})
    shell.settle()
    out = shell.send({"op": "unsubscribe", "id": 3, "feeds": ["quote:AAPL", "quote:MSFT"]})
    assert out == [{"op": "unsubscribed", "id": 3, "feeds": ["quote:AAPL"]}]
    assert shell.removed == ["quote:AAPL"]
    assert shell.stats.client_subscriptions == 1
    assert shell.publish("quote:AAPL") == []  # the hub no longer routes it here
    assert ops(shell.publish("news:latest")) == ["update"]


def test_unsubscribing_while_the_snapshot_is_read_sends_nothing_for_it() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"]})
    shell.answer()
    shell.collect()
    shell.protocol.deliver("quote:AAPL", 5, update_frame("quote:AAPL", b"{}"))
    shell.protocol.resync()  # the read is in flight; a resync queues behind it
    shell.answer()  # the subscribe's read finishes
    shell.collect()
    assert shell.pending
    assert not busy(shell)
    shell.send({"op": "unsubscribe", "feeds": ["quote:AAPL"]})
    shell.answer()  # the resync read comes back for a feed no longer followed
    assert shell.collect() == []


def test_get_answers_with_the_request_id_and_does_not_hold_updates() -> None:
    shell = authed()
    shell.store["news:latest"] = b"[1]"
    assert shell.send({"op": "get", "id": 8, "feed": "news:latest"}) == []
    assert busy(shell)
    shell.answer()
    assert shell.collect() == [{"op": "snapshot", "id": 8, "feed": "news:latest", "data": [1]}]
    assert not busy(shell)
    assert shell.protocol.subscriptions == ()
    assert shell.stats.snapshots_out == 1


def test_a_pattern_get_sends_one_snapshot_per_matching_feed() -> None:
    shell = authed()
    shell.store.update({"quote:A": b"1", "quote:B": b"2"})
    shell.send({"op": "get", "id": 1, "feed": "quote:*"})
    shell.answer()
    assert [(m["feed"], m["data"]) for m in shell.collect()] == [("quote:A", 1), ("quote:B", 2)]
    assert shell.stats.snapshots_out == 2


def test_a_pattern_get_that_matches_nothing_is_answered_with_null() -> None:
    shell = authed()
    shell.send({"op": "get", "id": 2, "feed": "quote:*"})
    shell.answer()
    assert shell.collect() == [{"op": "snapshot", "id": 2, "feed": "quote:*", "data": None}]
    assert not busy(shell)
    shell.send({"op": "get", "id": 3, "feed": "news:ticker:*"})
    shell.answer()
    assert shell.collect() == [{"op": "snapshot", "id": 3, "feed": "news:ticker:*", "data": None}]
    assert shell.stats.snapshots_out == 2


def test_get_when_the_cache_is_down_answers_unavailable() -> None:
    shell = authed()
    shell.send({"op": "get", "id": 8, "feed": "quote:AAPL"})
    shell.answer(unavailable=True)
    assert shell.collect() == [
        {
            "op": "error",
            "id": 8,
            "code": "unavailable",
            "message": "the cache is unavailable; retry",
        }
    ]
    assert not busy(shell)
    assert shell.stats.snapshots_out == 0


def test_a_missing_snapshot_is_reported_and_updates_still_flow() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"]})
    shell.answer()
    shell.collect()
    shell.publish("quote:AAPL")
    shell.answer(unavailable=True)
    assert shell.collect() == [
        {
            "op": "error",
            "id": None,
            "code": "unavailable",
            "message": "no snapshot for 'quote:AAPL' now; it will follow",
        },
        {"op": "update", "feed": "quote:AAPL", "data": {"seq": 1}},
    ]
    assert not busy(shell)


def test_a_close_while_subscribing_ends_the_request_quietly() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"]})
    shell.protocol.close(CloseCode.UNAUTHENTICATED, "session ended", "session_revoked")
    shell.answer()
    assert shell.collect() == []
    assert not busy(shell)
    assert shell.pending == []


def test_a_close_while_a_snapshot_is_read_ends_the_request() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL", "news:latest"]})
    shell.answer()
    shell.collect()
    shell.protocol.close(CloseCode.GOING_AWAY, "bye", "shutdown")
    shell.answer()
    assert shell.collect() == []
    assert shell.pending == []
    assert not busy(shell)


# --- resync and held updates ------------------------------------------------------------------


def test_resync_resends_every_snapshot_in_order_before_held_updates() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A", "quote:B"]})
    shell.settle()
    shell.protocol.resync()
    shell.collect()
    assert shell.pending == [ReadSnapshot(3, resolve_feed("quote:A"), 7)]
    assert not busy(shell)  # a resync does not hold up requests
    shell.publish("quote:B")  # held until B's snapshot
    shell.answer()
    assert [(m["op"], m["feed"]) for m in shell.collect()] == [("snapshot", "quote:A")]
    assert shell.pending == [ReadSnapshot(4, resolve_feed("quote:B"), 7)]
    shell.answer()
    assert [(m["op"], m["feed"]) for m in shell.collect()] == [("snapshot", "quote:B")]


def test_updates_after_a_resync_wait_for_the_new_snapshot() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A"]})
    shell.settle()
    shell.protocol.resync()
    shell.collect()
    assert shell.publish("quote:A") == []  # held until the snapshot is sent
    shell.answer()
    assert [(m["op"], m["data"]) for m in shell.collect()] == [
        ("snapshot", {"seq": 1}),
        ("update", {"seq": 1}),  # dispatched after the read began: released after it
    ]
    assert ops(shell.publish("quote:A")) == ["update"]


def test_a_resync_during_a_subscription_s_read_sends_both_snapshots() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A"]})
    shell.answer()
    shell.collect()
    shell.protocol.resync()
    shell.answer()  # the subscription's snapshot
    shell.collect()
    # The subscription's snapshot released what was held, so updates flow while the resync's
    # read is in flight; its snapshot follows them.
    assert ops(shell.publish("quote:A")) == ["update"]
    shell.answer()
    assert [(m["op"], m["data"]) for m in shell.collect()] == [("snapshot", {"seq": 1})]
    assert ops(shell.publish("quote:A")) == ["update"]
    assert shell.stats.snapshots_out == 2


def test_a_resync_before_a_snapshotless_subscription_is_confirmed() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A"], "snapshot": False})
    shell.protocol.resync()  # the link came back while the subscription was being made
    shell.collect()
    ref = resolve_feed("quote:A")
    assert shell.pending == [AddFeeds((ref,)), ReadSnapshot(1, ref, 7)]
    shell.answer(0)
    assert ops(shell.collect()) == ["subscribed"]
    assert busy(shell)  # its own step waits behind the resync's read
    shell.answer()
    assert ops(shell.collect()) == ["snapshot"]
    assert not busy(shell)
    assert shell.pending == []
    assert ops(shell.publish("quote:A")) == ["update"]


def test_resyncs_waiting_for_their_turn_re_send_once() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A"]})
    shell.answer()
    shell.collect()
    shell.protocol.resync()  # the subscription's read is in flight: both queue behind it
    shell.protocol.resync()
    shell.answer()  # the subscription's snapshot
    shell.collect()
    shell.answer()  # the resync's
    assert ops(shell.collect()) == ["snapshot"]
    assert shell.pending == []  # the second gap is covered by the read that came after it
    assert shell.stats.snapshots_out == 2
    shell.protocol.resync()  # a gap after that read: read again
    shell.collect()
    assert shell.pending == [ReadSnapshot(3, resolve_feed("quote:A"), 7)]


def test_resync_with_no_subscription_reads_nothing() -> None:
    shell = authed()
    shell.protocol.resync()
    assert shell.collect() == []
    assert shell.pending == []


def test_held_updates_beyond_the_queue_size_drop_the_oldest() -> None:
    shell = authed(send_queue_messages=2)
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"]})
    shell.answer()
    shell.collect()
    for _ in range(4):
        shell.publish("quote:AAPL")
    assert shell.stats.drops == Counter(held_overflow=2)
    shell.protocol.snapshot_read(1, 0, [])
    assert [m["data"]["seq"] for m in shell.collect()] == [3, 4]


# --- slow clients -----------------------------------------------------------------------------


def big(feed: str, size: int) -> Frame:
    return update_frame(feed, b'"' + b"x" * size + b'"')


def test_a_full_queue_disconnects_a_slow_client_4009() -> None:
    shell = authed(send_queue_messages=3)
    shell.protocol.take(10)
    shell.hub["quote:AAPL"] = resolve_feed("quote:AAPL")
    for seq in range(3):
        shell.protocol.deliver("quote:AAPL", seq, big("quote:AAPL", 1))
    assert shell.protocol.queued == 3
    assert not shell.closes
    shell.protocol.deliver("quote:AAPL", 3, big("quote:AAPL", 1))
    shell.collect()
    assert shell.closes == [Close(CloseCode.TOO_SLOW, "too slow: send queue overflow")]
    assert shell.stats.violations == Counter(too_slow=1)
    assert shell.stats.disconnects == Counter(too_slow=1)
    assert shell.protocol.queued == 0
    assert shell.protocol.queued_bytes == 0


def test_the_queue_byte_cap_counts_exactly() -> None:
    frame = big("quote:AAPL", 10)
    size = len(frame.data)
    shell = authed(send_queue_bytes=2 * size)
    shell.protocol.take(10)
    shell.protocol.deliver("quote:AAPL", 1, frame)
    shell.protocol.deliver("quote:AAPL", 2, frame)
    assert shell.protocol.queued_bytes == 2 * size
    assert shell.protocol.commands() == []
    shell.protocol.deliver("quote:AAPL", 3, frame)
    assert shell.protocol.commands() == [Close(CloseCode.TOO_SLOW, "too slow: send queue overflow")]


def test_an_empty_queue_accepts_one_frame_larger_than_the_byte_cap() -> None:
    shell = authed(send_queue_bytes=1024)
    shell.protocol.take(10)
    shell.protocol.deliver("quote:AAPL", 1, big("quote:AAPL", 4096))
    assert shell.protocol.queued == 1
    assert shell.protocol.commands() == []


def test_drop_oldest_keeps_the_newest_and_counts_drops() -> None:
    shell = authed(send_queue_messages=2, slow_client_policy="drop_oldest")
    shell.protocol.take(10)
    for seq in range(1, 6):
        shell.protocol.deliver("quote:AAPL", seq, update_frame("quote:AAPL", b"%d" % seq))
    assert shell.stats.drops == Counter(queue_full=3)
    assert [m["data"] for m in shell.collect()] == [4, 5]
    assert shell.closes == []
    assert shell.protocol.queued_bytes == 0


def test_drop_oldest_by_bytes_keeps_the_byte_count_exact() -> None:
    small, large = update_frame("q", b"1"), big("q", 100)
    shell = authed(
        send_queue_bytes=len(large.data) + len(small.data), slow_client_policy="drop_oldest"
    )
    shell.protocol.take(10)
    shell.protocol.deliver("q", 1, small)
    shell.protocol.deliver("q", 2, small)
    shell.protocol.deliver("q", 3, large)
    assert shell.stats.drops == Counter(queue_full=1)
    assert shell.protocol.queued_bytes == len(small.data) + len(large.data)
    assert shell.protocol.take(1) == [small]
    assert shell.protocol.queued_bytes == len(large.data)


def test_take_returns_at_most_what_was_asked_in_order() -> None:
    shell = authed()
    shell.protocol.take(10)
    frames = [update_frame("q", b"%d" % n) for n in range(5)]
    for n, frame in enumerate(frames):
        shell.protocol.deliver("q", n, frame)
    assert shell.protocol.take(2) == frames[:2]
    assert shell.protocol.take(0) == []
    assert shell.protocol.take(5) == frames[2:]
    assert shell.protocol.queued == 0


# --- ending -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "received", "why", "violations"),
    [
        (1001, 1001, "shutdown", Counter()),
        (1009, 1009, "frame_too_big", Counter(frame_too_big=1)),
        (None, None, "connection_lost", Counter()),
        (None, 1006, "connection_lost", Counter()),
        (None, 1000, "client_closed", Counter()),
        (1000, 1000, "client_closed", Counter()),
        (1011, 4000, "client_closed", Counter()),
    ],
)
def test_an_ended_connection_is_counted_by_why(
    sent: int | None, received: int | None, why: str, violations: Counter[str]
) -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL", "news:latest"]})
    shell.settle()
    shell.protocol.deliver("quote:AAPL", 1, update_frame("quote:AAPL", b"{}"))  # not written
    shell.protocol.connection_ended(sent, received)
    assert shell.protocol.queued == 0
    assert shell.protocol.queued_bytes == 0
    shell.collect()
    assert shell.stats.disconnects == Counter({why: 1})
    assert shell.stats.violations == violations
    assert sorted(shell.removed) == ["news:latest", "quote:AAPL"]
    assert shell.stats.client_subscriptions == 0
    assert shell.protocol.state is SessionState.CLOSED


def test_an_end_after_our_own_close_is_not_counted_twice() -> None:
    shell = authed()
    shell.protocol.close(CloseCode.TOO_SLOW, "x", "too_slow")
    shell.protocol.close(CloseCode.RATE_LIMITED, "y", "rate_limited")
    shell.protocol.connection_ended(4009, None)
    assert shell.stats.disconnects == Counter(too_slow=1)
    assert shell.protocol.commands() == [Close(CloseCode.TOO_SLOW, "x")]


def test_a_snapshot_answer_after_the_end_is_ignored() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:A"]})
    shell.answer()
    shell.collect()
    shell.protocol.connection_ended(None, 1006)
    shell.answer()
    assert shell.collect() == []


def test_an_end_while_a_request_waits_releases_the_shell() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"]})
    shell.protocol.connection_ended(None, 1006)
    assert not busy(shell)
    shell.answer()  # late answers are ignored
    assert shell.collect() == []


# --- whole sequences --------------------------------------------------------------------------

FEEDS = ("quote:AAPL", "quote:MSFT", "news:latest", "alerts:hod", "mdp:heartbeat:x", "nope")
SERVED = FEEDS[:4]
GRANTS = (["*"], ["quote:*"], ["quote:AA"], ["quote:AAPL", "news:*"], ["alerts:hod"])

_feed_lists = st.lists(st.sampled_from(FEEDS), min_size=1, max_size=4)
ACTIONS = st.one_of(
    st.tuples(st.just("auth"), st.sampled_from(GRANTS), st.sampled_from([-10.0, 30.0, 300.0])),
    st.tuples(st.just("sub"), _feed_lists, st.booleans()),
    st.tuples(st.just("unsub"), _feed_lists),
    st.tuples(st.just("get"), st.sampled_from(FEEDS)),
    st.tuples(st.just("ping")),
    st.tuples(st.just("bad"), st.sampled_from(["{", '{"op":"x"}', "[" * 3000 + "]" * 3000])),
    st.tuples(st.just("publish"), st.sampled_from(FEEDS[:4])),
    st.tuples(st.just("answer"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("resync")),
    st.tuples(st.just("expire")),
)


class Observer:
    """Checks the frame log as it grows: what a client may see, and in which order."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.awaiting: set[str] = set()  # new subscriptions whose snapshot is not sent yet
        self.last_seq: dict[str, int] = {}
        self.authenticated = False

    def see(self, frames: list[dict[str, Any]]) -> None:
        protocol = self.shell.protocol
        for frame in frames:
            op = frame["op"]
            if not self.authenticated:
                assert op == "auth_ok", frame  # nothing before authentication
                self.authenticated = True
            feed = frame.get("feed")
            if op == "update":
                assert feed not in self.awaiting, f"update before the snapshot: {frame}"
                assert feed in protocol.subscriptions, f"update of a feed not followed: {frame}"
                seq = frame["data"]["seq"]
                assert seq > self.last_seq.get(feed, 0), "updates out of order or repeated"
                self.last_seq[feed] = seq
            elif op == "snapshot" and "id" not in frame:
                assert feed in protocol.subscriptions, frame
                self.awaiting.discard(feed)
            elif op == "error" and frame["code"] == "unavailable" and frame["id"] is None:
                self.awaiting.difference_update(
                    f for f in list(self.awaiting) if f"{f!r}" in frame["message"]
                )
        self.check_state()

    def check_state(self) -> None:
        shell, protocol = self.shell, self.shell.protocol
        subs = protocol.subscriptions
        assert shell.stats.client_subscriptions == len(subs)
        assert len(subs) <= shell.settings.max_subscriptions
        assert len(shell.closes) <= 1
        if protocol.closing:
            assert protocol.queued == 0
        if not self.authenticated:
            assert subs == ()
            assert shell.hub == {}
            assert not any(isinstance(c, AddFeeds | ReadSnapshot) for c in shell.pending)


def client_message(action: tuple[Any, ...]) -> dict[str, Any] | str:
    kind = action[0]
    if kind == "auth":
        _, grant, age = action
        return {"op": "auth", "token": token(grant, 60, now=NOW - age)}
    if kind == "sub":
        return {"op": "subscribe", "feeds": action[1], "snapshot": action[2]}
    if kind == "unsub":
        return {"op": "unsubscribe", "feeds": action[1]}
    if kind == "get":
        return {"op": "get", "id": 1, "feed": action[1]}
    if kind == "ping":
        return {"op": "ping"}
    return str(action[1])


def play_message(shell: Shell, observer: Observer, action: tuple[Any, ...]) -> None:
    protocol = shell.protocol
    while protocol.busy:  # the shell reads the next message only once the request is done
        observer.see(shell.settle())
    if protocol.closing:
        return
    kind = action[0]
    before = set(protocol.subscriptions)
    violations = sum(shell.stats.violations.values())
    out = shell.send(client_message(action))
    observer.see(out)
    if kind == "bad" and observer.authenticated and not protocol.closing:
        assert ops(out) == ["error"]
        assert out[0]["code"] == "bad_request"
        assert sum(shell.stats.violations.values()) == violations + 1
    if kind == "sub" and action[2]:
        observer.awaiting |= set(protocol.subscriptions) - before
    if kind in {"unsub", "auth"}:
        observer.awaiting &= set(protocol.subscriptions)
    grant = protocol._grant  # the invariant is about the grant held now
    for name in protocol.subscriptions:  # against a reference: a glob that must match whole
        assert grant is not None
        assert name in SERVED
        assert any(fnmatchcase(name, pattern) for pattern in grant.patterns)


def play(shell: Shell, observer: Observer, action: tuple[Any, ...]) -> None:
    protocol = shell.protocol
    kind = action[0]
    if kind == "publish":
        observer.see(shell.publish(action[1]))
    elif kind == "answer":
        if shell.pending:
            _, index, unavailable = action
            shell.answer(index % len(shell.pending), unavailable=unavailable)
            observer.see(shell.collect())
    elif kind == "resync":
        protocol.resync()
        observer.see(shell.collect())
    elif kind == "expire":
        protocol.expired()
        observer.see(shell.collect())
        if observer.authenticated:
            assert protocol.closing
    else:
        play_message(shell, observer, action)


@given(st.lists(ACTIONS, max_size=40))
def test_any_message_sequence_keeps_the_session_rules(actions: list[tuple[Any, ...]]) -> None:
    shell = Shell()
    observer = Observer(shell)
    for action in actions:
        play(shell, observer, action)
    observer.see(shell.settle())
    if not shell.protocol.closing:
        # Settled: every subscription has had its snapshot (or was told it will follow).
        assert observer.awaiting == set()
        for name in shell.protocol.subscriptions:
            before = observer.last_seq.get(name, 0)
            observer.see(shell.publish(name))
            assert observer.last_seq[name] > before, "a settled subscription streams"
    shell.protocol.connection_ended(None, 1006)
    shell.collect()
    assert shell.stats.client_subscriptions == 0
    assert shell.hub == {}
    assert sum(shell.stats.disconnects.values()) == 1


@given(st.lists(st.sampled_from(FEEDS), max_size=8), st.sampled_from(GRANTS))
def test_a_subscription_is_held_only_when_granted_and_in_the_catalogue(
    feeds: list[str], grant: list[str]
) -> None:
    shell = Shell(max_subscriptions=10)
    shell.auth(grant)
    shell.send({"op": "subscribe", "feeds": feeds})
    expected = [
        name
        for name in dict.fromkeys(feeds)
        if name in SERVED and any(fnmatchcase(name, pattern) for pattern in grant)
    ]
    assert list(shell.protocol.subscriptions) == expected


# --- boards as deltas -------------------------------------------------------------------------

BOARD = "scanner:top_gainers"
SYMBOLS = ("AA", "BB", "CC", "DD")

board_rows = st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=4).flatmap(
    lambda names: st.tuples(
        *(
            st.fixed_dictionaries(
                {"symbol": st.just(name), "price": st.sampled_from([1.0, 1.5, 2.0])},
                optional={"rvol_tod": st.just(1.25)},
            )
            for name in names
        )
    ).map(list)
)
board_documents = st.fixed_dictionaries(
    {"board": st.just("top_gainers"), "as_of_ms": st.integers(0, 2), "rows": board_rows}
)


def board_document(*prices: float, as_of_ms: int = 0) -> dict[str, Any]:
    rows = [{"symbol": s, "price": p} for s, p in zip(SYMBOLS, prices, strict=False)]
    return {"board": "top_gainers", "as_of_ms": as_of_ms, "rows": rows}


class BoardShell(Shell):
    """A shell whose hub numbers and diffs board publications as :class:`mdp_wds.hub.Hub` does."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
        self.trackers: dict[str, BoardTracker] = {}
        self.history: dict[int, dict[str, Any]] = {}

    def command(self, command: Command) -> None:
        super().command(command)
        if isinstance(command, AddFeeds):
            for ref in command.refs:
                if ref.feed.delta_key is not None:  # the view of the subscription's fields
                    tracker = BoardTracker(ref.feed.delta_key, command.fields)
                    self.trackers.setdefault(ref.name, tracker)
        elif isinstance(command, RemoveFeed):
            self.trackers.pop(command.ref.name, None)

    def answer(self, index: int = 0, *, revoked: bool = False, unavailable: bool = False) -> None:
        command = self.pending[index]
        if not isinstance(command, ReadSnapshot) or unavailable:
            super().answer(index, revoked=revoked, unavailable=unavailable)
            return
        self.pending.pop(index)
        items = self.read(command.ref, command.limit)
        tracker = self.trackers.get(command.ref.name)
        board_seq = None  # as Hub.board_seq: the number only when the bytes are the last relayed
        if (
            tracker is not None
            and tracker.fields == command.fields
            and tracker.payload == items[0].data
        ):
            board_seq = tracker.seq
        self.protocol.snapshot_read(
            command.ticket, self.marks.pop(command.ticket), items, board_seq
        )

    def publish_board(
        self, document: dict[str, Any], *, delivered: bool = True
    ) -> list[dict[str, Any]]:
        """Write and relay a board; ``delivered=False``: numbered by the hub, missed here."""
        self.seq += 1
        payload = json.dumps(document, separators=(",", ":")).encode()
        self.store[BOARD] = payload
        tracker = self.trackers.get(BOARD)
        if tracker is not None:
            delta = tracker.advance(payload)
            assert tracker.document is not None
            self.history[tracker.seq] = json.loads(tracker.document)
            board = BoardFrame(
                tracker.seq,
                None if delta is None else delta_frame(BOARD, tracker.seq, delta),
            )
            if delivered:
                frame = update_frame(BOARD, tracker.document, seq=tracker.seq)
                self.protocol.deliver(BOARD, self.seq, frame, board)
        return self.collect()


class BoardClient:
    """What the dashboard keeps: the board and its number; a delta must follow that number."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None
        self.seq: int | None = None

    def take(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            if frame.get("feed") != BOARD:
                continue
            op = frame["op"]
            if op == "delta":
                assert self.document is not None
                assert self.seq is not None
                assert frame["base"] == self.seq == frame["seq"] - 1, "a delta after a gap"
                self.document = apply_delta(self.document, frame["data"], "symbol")
            else:
                assert op in {"snapshot", "update"}, frame
                if op == "update" and self.seq is not None:
                    assert frame["seq"] > self.seq, "a publication the client already has"
                self.document = frame["data"]
            self.seq = frame["seq"]


def board_shell(
    deltas: bool = True, fields: list[str] | None = None, **overrides: Any
) -> BoardShell:
    shell = BoardShell(**overrides)
    assert shell.auth()["op"] == "auth_ok"
    message: dict[str, Any] = {"op": "subscribe", "id": 2, "feeds": [BOARD], "deltas": deltas}
    if fields is not None:
        message["fields"] = fields
    shell.send(message)
    return shell


def test_a_board_followed_with_deltas_gets_numbered_snapshot_then_deltas() -> None:
    shell = board_shell()
    shell.settle()  # no publication yet: the snapshot's number is unknown
    assert shell.frames[-1] == {"op": "snapshot", "seq": None, "feed": BOARD, "data": None}
    first = shell.publish_board(board_document(1.0, 2.0))
    assert ops(first) == ["update"]  # the first publication has no base: whole
    assert first[0]["seq"] == 1
    second = shell.publish_board(board_document(1.5, 2.0))
    assert [(f["op"], f["seq"], f["base"]) for f in second] == [("delta", 2, 1)]
    assert second[0]["data"]["patch"] == {"AA": {"price": 1.5}}  # the hub's delta, as built
    third = shell.publish_board(board_document(1.5, 2.0, as_of_ms=1))
    assert ops(third) == ["delta"]
    assert shell.stats.deltas_out == 2


def test_a_snapshot_of_the_last_publication_continues_with_deltas() -> None:
    shell = board_shell()
    shell.pending.clear()  # another client's subscription numbered what follows
    shell.trackers[BOARD] = BoardTracker("symbol")
    shell.publish_board(board_document(1.0))
    shell.publish_board(board_document(2.0))
    shell.protocol.feeds_added()
    shell.collect()
    out = shell.settle()
    assert out[-1]["op"] == "snapshot"
    assert out[-1]["seq"] == 2
    assert ops(shell.publish_board(board_document(1.5))) == ["delta"]


def test_a_snapshot_the_hub_cannot_vouch_for_makes_the_next_publication_whole() -> None:
    shell = BoardShell()
    shell.auth()
    shell.store[BOARD] = json.dumps(board_document(1.0)).encode()  # written before anyone relayed
    shell.send({"op": "subscribe", "feeds": [BOARD], "deltas": True})
    out = shell.settle()
    assert out[-1]["seq"] is None
    assert out[-1]["data"] == board_document(1.0)
    shell.trackers[BOARD].advance(shell.store[BOARD])  # the hub has a base, the client no number
    assert ops(shell.publish_board(board_document(2.0))) == ["update"]
    assert ops(shell.publish_board(board_document(3.0))) == ["delta"]


def test_a_missed_publication_makes_the_next_one_whole() -> None:
    shell = board_shell()
    shell.settle()
    shell.publish_board(board_document(1.0))
    shell.publish_board(board_document(2.0))
    shell.publish_board(board_document(3.0), delivered=False)  # e.g. dropped while held
    out = shell.publish_board(board_document(4.0))
    assert [(f["op"], f["seq"]) for f in out] == [("update", 4)]
    assert ops(shell.publish_board(board_document(5.0))) == ["delta"]


def test_a_held_publication_the_snapshot_contains_is_not_sent_again() -> None:
    shell = board_shell()
    shell.settle()
    shell.publish_board(board_document(1.0))
    shell.protocol.resync()
    shell.collect()
    assert ops(shell.publish_board(board_document(2.0))) == []  # held behind the new read
    out = shell.settle()  # the read sees publication 2, which was dispatched after the mark
    assert [(f["op"], f["seq"]) for f in out] == [("snapshot", 2)]
    assert [(f["op"], f["seq"]) for f in shell.publish_board(board_document(3.0))] == [("delta", 3)]


def test_a_held_publication_newer_than_the_snapshot_goes_after_it_as_a_delta() -> None:
    shell = board_shell()
    shell.settle()
    shell.publish_board(board_document(1.0))
    shell.protocol.resync()
    shell.collect()
    read = shell.pending.pop()
    assert isinstance(read, ReadSnapshot)
    items = shell.read(read.ref, read.limit)  # the read sees publication 1 ...
    shell.publish_board(board_document(2.0))  # ... and 2 is dispatched before it returns
    shell.protocol.snapshot_read(read.ticket, shell.marks.pop(read.ticket), items, 1)
    out = shell.collect()
    assert [(f["op"], f["seq"]) for f in out] == [("snapshot", 1), ("delta", 2)]


def test_a_get_of_a_followed_board_is_numbered_and_rebases_the_deltas() -> None:
    shell = board_shell()
    shell.settle()
    shell.publish_board(board_document(1.0))
    shell.send({"op": "get", "id": 9, "feed": BOARD})
    out = shell.settle()
    assert out == [
        {"op": "snapshot", "id": 9, "seq": 1, "feed": BOARD, "data": board_document(1.0)}
    ]
    assert ops(shell.publish_board(board_document(2.0))) == ["delta"]


def test_a_board_followed_without_deltas_gets_whole_updates_only() -> None:
    shell = board_shell(deltas=False)
    shell.settle()
    assert "seq" not in shell.frames[-1]
    shell.publish_board(board_document(1.0))
    assert ops(shell.publish_board(board_document(2.0))) == ["update"]
    shell.send({"op": "get", "id": 9, "feed": BOARD})
    assert "seq" not in shell.settle()[-1]
    assert shell.stats.deltas_out == 0


def test_deltas_are_not_kept_for_a_feed_that_is_not_a_board() -> None:
    shell = authed()
    shell.send({"op": "subscribe", "feeds": ["quote:AAPL"], "deltas": True})
    assert "seq" not in shell.settle()[-1]
    assert shell.protocol._boards == {}


def test_unsubscribing_forgets_the_board_s_number() -> None:
    shell = board_shell()
    shell.settle()
    shell.publish_board(board_document(1.0))
    shell.send({"op": "unsubscribe", "feeds": [BOARD]})
    assert shell.protocol._boards == {}
    shell.send({"op": "subscribe", "feeds": [BOARD]})  # again, without deltas
    shell.settle()
    assert ops(shell.publish_board(board_document(2.0))) == ["update"]


def test_a_board_s_number_is_forgotten_when_the_connection_ends() -> None:
    shell = board_shell()
    shell.settle()
    shell.protocol.connection_ended(None, 1006)
    assert shell.protocol._boards == {}


BOARD_ACTIONS = st.one_of(
    st.tuples(st.just("publish"), board_documents),
    st.tuples(st.just("miss"), board_documents),
    st.tuples(st.just("answer")),
    st.tuples(st.just("resync")),
    st.tuples(st.just("get")),
)


@given(st.lists(board_documents, max_size=3), st.lists(BOARD_ACTIONS, max_size=25))
def test_snapshot_plus_deltas_equal_the_board_at_every_step(
    before: list[dict[str, Any]], actions: list[tuple[Any, ...]]
) -> None:
    shell = BoardShell()
    shell.auth()
    for document in before:  # published before this client subscribed: no number vouched
        shell.store[BOARD] = json.dumps(document).encode()
    shell.send({"op": "subscribe", "feeds": [BOARD], "deltas": True})
    client = BoardClient()
    missed = False
    for action in actions:
        kind = action[0]
        if kind in {"publish", "miss"}:
            client.take(shell.publish_board(action[1], delivered=kind == "publish"))
            missed = kind == "miss"
        elif kind == "answer" and shell.pending:
            shell.answer()
            client.take(shell.collect())
        elif kind == "resync":
            shell.protocol.resync()
            client.take(shell.collect())
        elif kind == "get" and not shell.pending:
            client.take(shell.send({"op": "get", "id": 3, "feed": BOARD}))
        if client.seq is not None:  # a numbered copy is exactly that publication
            assert client.document == shell.history[client.seq]
        if not shell.pending and not missed:  # settled: the client shows the board
            assert client.document == json.loads(shell.store.get(BOARD, b"null"))
    client.take(shell.settle())
    client.take(shell.publish_board({"board": "top_gainers", "as_of_ms": 9, "rows": []}))
    assert client.document == json.loads(shell.store[BOARD])


def test_a_board_followed_without_a_snapshot_starts_whole_then_deltas() -> None:
    shell = BoardShell()
    shell.auth()
    shell.send({"op": "subscribe", "feeds": [BOARD], "deltas": True, "snapshot": False})
    assert ops(shell.settle()) == ["subscribed"]
    shell.publish_board(board_document(1.0), delivered=False)  # relayed to others before
    first = shell.publish_board(board_document(2.0))  # a delta exists; the client has no copy
    assert [(f["op"], f["seq"]) for f in first] == [("update", 2)]
    assert [(f["op"], f["seq"]) for f in shell.publish_board(board_document(3.0))] == [("delta", 3)]


# --- projected boards (``fields``) -------------------------------------------------------------

WIDE = ["price", "end_ms"]


def wide_document(*prices: float, as_of_ms: int = 0) -> dict[str, Any]:
    rows = [
        {"symbol": s, "price": p, "vwap": p - 0.1, "end_ms": as_of_ms, "regular": {"open": 1}}
        for s, p in zip(SYMBOLS, prices, strict=False)
    ]
    return {"board": "top_gainers", "as_of_ms": as_of_ms, "rows": rows}


def projected(document: dict[str, Any], fields: list[str] = WIDE) -> dict[str, Any]:
    result = project(document, "symbol", frozenset(fields))
    assert isinstance(result, dict)
    return result


def test_a_projected_board_asks_the_hub_for_its_field_set_and_gets_projected_frames() -> None:
    shell = board_shell(fields=["price", "end_ms", "price"])
    add = shell.pending[0]
    assert isinstance(add, AddFeeds)
    assert add.fields == frozenset(WIDE)
    shell.settle()
    assert shell.frames[-1] == {"op": "snapshot", "seq": None, "feed": BOARD, "data": None}
    first = shell.publish_board(wide_document(1.0, 2.0))
    assert [(f["op"], f["seq"]) for f in first] == [("update", 1)]
    assert first[0]["data"] == projected(wide_document(1.0, 2.0))
    second = shell.publish_board(wide_document(1.5, 2.0))
    assert [(f["op"], f["seq"], f["base"]) for f in second] == [("delta", 2, 1)]
    assert second[0]["data"] == {"rows": {}, "patch": {"AA": {"price": 1.5}}}  # no vwap
    assert shell.stats.violations == Counter()


def test_a_projected_board_s_snapshot_is_projected_and_numbered_in_its_view() -> None:
    shell = board_shell(fields=WIDE)
    shell.settle()
    shell.publish_board(wide_document(1.0, 2.0))
    shell.protocol.resync()
    shell.collect()
    read = shell.pending[0]
    assert isinstance(read, ReadSnapshot)
    assert read.fields == frozenset(WIDE)  # the number is the view's
    out = shell.settle()
    assert out == [
        {"op": "snapshot", "seq": 1, "feed": BOARD, "data": projected(wide_document(1.0, 2.0))}
    ]
    assert ops(shell.publish_board(wide_document(3.0, 2.0))) == ["delta"]


def test_a_first_snapshot_of_a_projected_board_is_projected() -> None:
    shell = BoardShell()
    shell.auth()
    shell.store[BOARD] = json.dumps(wide_document(1.0)).encode()
    shell.send({"op": "subscribe", "id": 4, "feeds": [BOARD], "fields": ["price"]})
    out = shell.settle()
    assert out[-1] == {
        "op": "snapshot",
        "feed": BOARD,
        "data": projected(wide_document(1.0), ["price"]),
    }
    assert out[-1]["data"]["rows"] == [{"symbol": "AA", "price": 1.0}]
    whole = shell.publish_board(wide_document(2.0))  # without deltas: whole, still projected
    assert whole[0]["data"]["rows"] == [{"symbol": "AA", "price": 2.0}]


def test_a_get_with_the_subscription_s_fields_is_numbered_and_projected() -> None:
    shell = board_shell(fields=WIDE)
    shell.settle()
    shell.publish_board(wide_document(1.0))
    shell.send({"op": "get", "id": 9, "feed": BOARD, "fields": ["end_ms", "price"]})
    read = shell.pending[0]
    assert isinstance(read, ReadSnapshot)
    assert read.fields == frozenset(WIDE)
    out = shell.settle()
    assert out == [
        {"op": "snapshot", "id": 9, "seq": 1, "feed": BOARD, "data": projected(wide_document(1.0))}
    ]
    assert ops(shell.publish_board(wide_document(2.0))) == ["delta"]


@pytest.mark.parametrize("fields", [None, ["price"]])
def test_a_get_of_another_projection_makes_the_next_publication_whole(
    fields: list[str] | None,
) -> None:
    shell = board_shell(fields=WIDE)
    shell.settle()
    shell.publish_board(wide_document(1.0))
    message: dict[str, Any] = {"op": "get", "id": 9, "feed": BOARD}
    if fields is not None:
        message["fields"] = fields
    shell.send(message)
    read = shell.pending[0]
    assert isinstance(read, ReadSnapshot)
    assert read.fields == (None if fields is None else frozenset(fields))
    out = shell.settle()
    expected = wide_document(1.0) if fields is None else projected(wide_document(1.0), fields)
    assert out == [{"op": "snapshot", "id": 9, "seq": None, "feed": BOARD, "data": expected}]
    assert ops(shell.publish_board(wide_document(2.0))) == ["update"]  # its copy: unnumbered
    assert ops(shell.publish_board(wide_document(3.0))) == ["delta"]


def test_a_get_with_fields_of_a_board_not_followed_is_projected() -> None:
    shell = BoardShell()
    shell.auth()
    shell.store[BOARD] = json.dumps(wide_document(1.0, 2.0)).encode()
    shell.send({"op": "get", "id": 5, "feed": BOARD, "fields": ["vwap"]})
    out = shell.settle()
    assert out == [
        {
            "op": "snapshot",
            "id": 5,
            "feed": BOARD,
            "data": projected(wide_document(1.0, 2.0), ["vwap"]),
        }
    ]


@pytest.mark.parametrize("op", ["subscribe", "get"])
def test_fields_of_a_feed_without_rows_are_refused_with_bad_fields(op: str) -> None:
    shell = authed()
    message: dict[str, Any] = {"op": op, "id": 6, "fields": ["price"]}
    message.update({"feeds": ["quote:AAPL"]} if op == "subscribe" else {"feed": "quote:AAPL"})
    out = shell.send(message)
    assert out[0] == {
        "op": "error",
        "id": 6,
        "code": "bad_fields",
        "message": "'fields' applies to a board (a feed of rows) by name; 'quote:AAPL' is not one",
    }
    assert shell.stats.violations == Counter({"bad_fields": 1})
    assert shell.protocol.subscriptions == ()
    assert shell.stats.client_subscriptions == 0
    assert not [c for c in shell.pending if isinstance(c, ReadSnapshot)]
    assert shell.closes == []


def test_fields_on_a_pattern_are_refused_with_bad_fields() -> None:
    shell = BoardShell()
    shell.auth()
    board = resolve_feed(BOARD)
    as_pattern = FeedRef(BOARD, board.feed, is_pattern=True)  # no board is one; still refused
    assert shell.protocol._fields_apply(3, board) is True
    assert shell.protocol._fields_apply(3, as_pattern) is False
    assert shell.collect()[0]["code"] == "bad_fields"


def test_a_refused_feed_does_not_stop_the_boards_of_the_same_request() -> None:
    shell = BoardShell()
    shell.auth()
    out = shell.send({"op": "subscribe", "id": 2, "feeds": ["quote:AAPL", BOARD], "fields": WIDE})
    assert ops(out) == ["error"]
    out = shell.settle()
    assert out[0] == {"op": "subscribed", "id": 2, "feeds": [BOARD]}
    assert shell.protocol._fields == {BOARD: frozenset(WIDE)}


@pytest.mark.parametrize(
    "fields", ["price", [f"f{i}" for i in range(MAX_FIELDS + 1)], [""], ["x" * 65], [3]]
)
def test_malformed_fields_are_a_counted_bad_fields_error(fields: object) -> None:
    shell = authed()
    out = shell.send({"op": "subscribe", "id": 8, "feeds": [BOARD], "fields": fields})
    assert len(out) == 1
    assert out[0]["op"] == "error"
    assert out[0]["id"] == 8
    assert out[0]["code"] == "bad_fields"
    assert shell.stats.violations == Counter({"bad_fields": 1})
    assert shell.protocol.subscriptions == ()
    assert shell.send({"op": "ping", "id": 5}) == [{"op": "pong", "id": 5}]


def test_the_most_fields_are_accepted() -> None:
    shell = BoardShell()
    shell.auth()
    most = [f"f{i}" for i in range(MAX_FIELDS)]
    shell.send({"op": "subscribe", "id": 8, "feeds": [BOARD], "fields": most})
    assert shell.settle()[0] == {"op": "subscribed", "id": 8, "feeds": [BOARD]}
    assert shell.protocol._fields[BOARD] == frozenset(most)


def test_a_first_message_with_bad_fields_is_confused_not_hostile() -> None:
    shell = Shell()
    shell.send({"op": "subscribe", "feeds": [BOARD], "fields": "price"})
    assert shell.closes == [Close(CloseCode.UNAUTHENTICATED, "authenticate first")]
    assert shell.stats.violations == Counter({"unauthenticated": 1})
    assert shell.stats.disconnects == Counter({"unauthenticated": 1})


def test_a_field_set_the_hub_refuses_is_answered_too_many_field_sets() -> None:
    shell = BoardShell()
    shell.auth()
    shell.send({"op": "subscribe", "id": 2, "feeds": [BOARD, "quote:AAPL"], "fields": ["price"]})
    add = shell.pending.pop(0)
    assert isinstance(add, AddFeeds)
    assert [ref.name for ref in add.refs] == [BOARD]
    assert shell.stats.client_subscriptions == 1
    shell.protocol.feeds_added(["alerts:hod", BOARD])  # a name not subscribed is ignored
    out = shell.collect()
    assert out == [
        {
            "op": "error",
            "id": 2,
            "code": "too_many_field_sets",
            "message": "the feed is followed with too many field sets; 'scanner:top_gainers'"
            " refused: subscribe with the fields of another client",
        },
        {"op": "subscribed", "id": 2, "feeds": []},
    ]
    assert shell.stats.violations == Counter({"bad_fields": 1, "too_many_field_sets": 1})
    assert shell.stats.client_subscriptions == 0
    assert shell.protocol.subscriptions == ()
    assert shell.protocol._fields == {}
    assert shell.protocol._held == {}
    assert shell.pending == []  # no snapshot read
    assert shell.removed == []  # the hub never registered it
    assert not busy(shell)


def test_a_refusal_keeps_the_request_s_other_feeds() -> None:
    shell = BoardShell()
    shell.auth()
    other = "scanner:top_volume"
    shell.send({"op": "subscribe", "id": 2, "feeds": [BOARD, other], "fields": ["price"]})
    shell.pending.pop(0)
    shell.protocol.feeds_added([BOARD])
    out = shell.collect()
    assert ops(out) == ["error", "subscribed"]
    assert out[1]["feeds"] == [other]
    read = shell.pending[0]
    assert isinstance(read, ReadSnapshot)
    assert read.ref.name == other
    assert read.fields == frozenset({"price"})
    assert shell.protocol.subscriptions == (other,)
    assert shell.stats.client_subscriptions == 1
    shell.settle()
    assert not busy(shell)


def test_unsubscribing_and_ending_forget_the_fields() -> None:
    shell = board_shell(fields=WIDE)
    shell.settle()
    shell.send({"op": "unsubscribe", "feeds": [BOARD]})
    assert shell.protocol._fields == {}
    shell.send({"op": "subscribe", "feeds": [BOARD]})  # again, whole rows
    shell.settle()
    assert shell.protocol._fields == {}
    assert shell.protocol.commands() == []
    other = board_shell(fields=WIDE)
    other.settle()
    other.protocol.connection_ended(None, 1006)
    assert other.protocol._fields == {}


def test_resubscribing_keeps_the_fields_the_feed_was_followed_with() -> None:
    shell = board_shell(fields=WIDE)
    shell.settle()
    shell.send({"op": "subscribe", "id": 3, "feeds": [BOARD], "fields": ["vwap"]})
    assert shell.protocol._fields == {BOARD: frozenset(WIDE)}


@given(
    st.lists(board_documents, max_size=3),
    st.lists(BOARD_ACTIONS, max_size=25),
    st.sampled_from([["price"], ["rvol_tod"], [], ["symbol", "nowhere"]]),
)
def test_projected_snapshot_plus_deltas_equal_the_projected_board_at_every_step(
    before: list[dict[str, Any]], actions: list[tuple[Any, ...]], fields: list[str]
) -> None:
    shell = BoardShell()
    shell.auth()
    for document in before:
        shell.store[BOARD] = json.dumps(document).encode()
    shell.send({"op": "subscribe", "feeds": [BOARD], "deltas": True, "fields": fields})
    client = BoardClient()
    missed = False
    for action in actions:
        kind = action[0]
        if kind in {"publish", "miss"}:
            client.take(shell.publish_board(action[1], delivered=kind == "publish"))
            missed = kind == "miss"
        elif kind == "answer" and shell.pending:
            shell.answer()
            client.take(shell.collect())
        elif kind == "resync":
            shell.protocol.resync()
            client.take(shell.collect())
        elif kind == "get" and not shell.pending:
            client.take(shell.send({"op": "get", "id": 3, "feed": BOARD, "fields": fields}))
        if client.seq is not None:
            assert client.document == shell.history[client.seq]
        if not shell.pending and not missed:
            stored = json.loads(shell.store.get(BOARD, b"null"))
            assert client.document == project(stored, "symbol", frozenset(fields))
    client.take(shell.settle())
    client.take(shell.publish_board({"board": "top_gainers", "as_of_ms": 9, "rows": []}))
    assert client.document == json.loads(shell.store[BOARD])
