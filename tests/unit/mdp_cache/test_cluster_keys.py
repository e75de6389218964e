"""Hash tags of the key catalogue, cluster URLs and publish flags (pure, no Redis)."""

from __future__ import annotations

import pytest

from mdp_cache.client import is_cluster_url, slot_of
from mdp_cache.keys import (
    ALL_KEYS,
    FEED_QUOTE,
    KEY_HALT_VERSIONS,
    KEY_HALTS,
    KEY_LB_BOARD,
    KEY_LB_FIGURES,
    KEY_LB_ROWS,
    KEY_LB_VERSIONS,
    KEY_SCANNER_DEDUP,
    KEY_TT_BUCKET,
    KEY_TT_IDS,
    KEY_TT_STATS,
    KEY_TT_UNION,
    KEY_TT_WINDOW,
    KEY_WIDGET_VERSION,
)
from mdp_cache.widgets import PUBLISH, SPUBLISH, publish_flags


def test_a_tag_in_a_template_is_a_literal_brace_in_names_and_patterns() -> None:
    assert KEY_TT_WINDOW.name(symbol="AAPL") == "mdp:tt:{AAPL}:window"
    assert KEY_TT_WINDOW.pattern == "mdp:tt:{*}:window"
    assert KEY_HALTS.name() == "mdp:{halts}:rows"
    assert KEY_HALTS.pattern == "mdp:{halts}:rows"
    assert KEY_TT_BUCKET.pattern == "mdp:{tt:top}:*"
    assert KEY_LB_BOARD.pattern == "mdp:lb:{*}:board:*"
    assert (
        KEY_SCANNER_DEDUP.name(feed="alerts:hod", digest="ab")
        == "mdp:scanner:dedup:{alerts:hod}:ab"
    )


def test_keys_of_one_script_share_a_slot() -> None:
    day = "2026-03-02"
    leaderboard = {
        slot_of(key.name(day=day)) for key in (KEY_LB_ROWS, KEY_LB_VERSIONS, KEY_LB_FIGURES)
    }
    leaderboard |= {slot_of(KEY_LB_BOARD.name(day=day, board=b)) for b in ("a", "volume")}
    assert len(leaderboard) == 1
    window = {slot_of(k.name(symbol="MSFT")) for k in (KEY_TT_WINDOW, KEY_TT_IDS, KEY_TT_STATS)}
    assert len(window) == 1
    assert slot_of(KEY_HALTS.name()) == slot_of(KEY_HALT_VERSIONS.name())
    assert slot_of(KEY_TT_UNION.name()) == slot_of(KEY_TT_BUCKET.name(second=17))
    for symbol in ("AAPL", "BRK.B", "X"):
        name = FEED_QUOTE.name(symbol=symbol)
        assert slot_of(KEY_WIDGET_VERSION.name(feed=name)) == slot_of(name)
        assert slot_of(KEY_SCANNER_DEDUP.name(feed=name, digest="d")) == slot_of(name)


def test_per_symbol_and_per_day_keys_spread_over_slots() -> None:
    symbols = [f"S{n}" for n in range(200)]
    assert len({slot_of(KEY_TT_WINDOW.name(symbol=s)) for s in symbols}) > 190
    assert slot_of(KEY_LB_ROWS.name(day="2026-03-02")) != slot_of(
        KEY_LB_ROWS.name(day="2026-03-03")
    )


def test_every_tag_is_balanced() -> None:
    for key in ALL_KEYS:
        name = key.name(
            **{
                p: "p"
                for p in (
                    "day",
                    "symbol",
                    "feed",
                    "digest",
                    "second",
                    "board",
                    "kind",
                    "consumer",
                    "batch",
                    "component",
                    "instance",
                    "analyzer",
                    "group",
                    "partition",
                )
            }
        )
        assert name.count("{") == name.count("}") <= 1, key.template


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis+cluster://h:7000/0", True),
        ("rediss+cluster://u:p@h:7000", True),
        ("redis://h:6379/0", False),
        ("rediss://h:6379/1", False),
        ("unix:///tmp/redis.sock", False),
    ],
)
def test_cluster_urls_are_told_by_their_scheme(url: str, cluster: bool) -> None:
    assert is_cluster_url(url) is cluster


def test_a_cluster_publishes_both_ways_one_redis_plainly() -> None:
    assert publish_flags(True, cluster=False) == PUBLISH
    assert publish_flags(True, cluster=True) == PUBLISH | SPUBLISH
    assert publish_flags(False, cluster=True) == 0
    assert publish_flags(False, cluster=False) == 0
