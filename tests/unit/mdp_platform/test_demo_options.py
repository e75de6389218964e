from __future__ import annotations

import argparse

import pytest

from mdp_core.settings import Secret
from mdp_platform.__main__ import build_parser
from mdp_platform.demo import Demo, DemoError, DemoOptions, _with_db
from mdp_platform.feeds import MASSIVE_REST_URL, real_feeds
from mdp_platform.options import parse_clock_time


def test_the_demo_command_line_has_the_documented_options() -> None:
    args = build_parser().parse_args(
        ["demo", "--symbols", "50", "--speed", "2", "--start", "03:59", "--real-feeds"]
    )
    assert (args.symbols, args.speed, args.start.hour, args.start.minute) == (50, 2.0, 3, 59)
    assert args.real_feeds is True


@pytest.mark.parametrize("text", ["24:00", "9", "09:60", "ab:cd"])
def test_a_bad_start_time_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="HH:MM"):
        parse_clock_time(text)


@pytest.mark.parametrize(
    ("url", "offset", "expected"),
    [
        ("redis://127.0.0.1:6379/0", 1, "redis://127.0.0.1:6379/1"),
        ("redis://127.0.0.1:6379/4", 1, "redis://127.0.0.1:6379/5"),
        ("redis://127.0.0.1:6379", 1, "redis://127.0.0.1:6379/1"),
        ("redis://:pw@10.0.0.1:6379/", 0, "redis://:pw@10.0.0.1:6379/0"),
    ],
)
def test_mdc_and_wdc_share_a_server_in_neighbouring_databases(
    url: str, offset: int, expected: str
) -> None:
    assert _with_db(url, offset) == expected


async def test_real_feeds_need_a_massive_key_and_say_so() -> None:
    demo = Demo(DemoOptions(real_feeds=True), progress=lambda _line: None)
    with pytest.raises(DemoError, match="MASSIVE_API_KEY"):
        await demo.start()


def test_real_feeds_use_the_vendor_hosts_and_keep_keys_secret() -> None:
    plan = real_feeds(Secret("mk"), None)
    assert plan.news is None
    assert "no news" in plan.description
    assert "feed" not in plan.listener  # the listener's default: the real-time Massive host
    assert repr(plan.listener["api_key"]) == "Secret('***')"
    assert MASSIVE_REST_URL.startswith("https://")
