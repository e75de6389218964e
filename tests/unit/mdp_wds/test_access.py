import pytest

from mdp_wds.access import FeedRefused, Grant, resolve_feed
from mdp_wds.protocol import ErrorCode


@pytest.mark.parametrize(
    ("name", "template", "is_pattern"),
    [
        ("quote:AAPL", "quote:{symbol}", False),
        ("quote:*", "quote:{symbol}", True),
        ("news:ticker:*", "news:ticker:{symbol}", True),
        ("news:latest", "news:latest", False),
        ("alerts:hod", "alerts:hod", False),
        ("scanner:top_gainers", "scanner:top_gainers", False),
    ],
)
def test_catalogue_names_and_patterns_resolve(name: str, template: str, is_pattern: bool) -> None:
    ref = resolve_feed(name)
    assert (ref.name, ref.feed.template, ref.is_pattern) == (name, template, is_pattern)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("mdp:heartbeat:wds:1", ErrorCode.FORBIDDEN_FEED),
        ("mdp:*", ErrorCode.FORBIDDEN_FEED),
        ("*", ErrorCode.UNKNOWN_FEED),
        ("quote*", ErrorCode.UNKNOWN_FEED),
        ("scanner:*", ErrorCode.UNKNOWN_FEED),  # value feeds have no pattern
        ("quote:AAPL:x", ErrorCode.UNKNOWN_FEED),
        ("KEYS", ErrorCode.UNKNOWN_FEED),
    ],
)
def test_everything_else_is_refused(name: str, code: ErrorCode) -> None:
    with pytest.raises(FeedRefused) as refused:
        resolve_feed(name)
    assert refused.value.code is code
    assert refused.value.name == name


@pytest.mark.parametrize(
    ("patterns", "name", "allowed"),
    [
        (["*"], "quote:AAPL", True),
        (["*"], "quote:*", True),
        (["quote:*"], "quote:AAPL", True),
        (["quote:*"], "quote:*", True),
        (["quote:AAPL"], "quote:*", False),
        (["quote:AAPL"], "quote:MSFT", False),
        (["scanner:*"], "scanner:top_volume", True),
        (["news:ticker:A*"], "news:ticker:AAPL", True),
        (["news:ticker:A*"], "news:ticker:MSFT", False),
        ([], "quote:AAPL", False),
        (["quote:[A]*"], "quote:AAPL", False),  # only * is special
    ],
)
def test_grant_globs(patterns: list[str], name: str, allowed: bool) -> None:
    assert Grant.of(patterns).allows(name) is allowed


def test_grant_check_raises_forbidden() -> None:
    with pytest.raises(FeedRefused) as refused:
        Grant.of(["quote:*"]).check(resolve_feed("news:latest"))
    assert refused.value.code is ErrorCode.FORBIDDEN_FEED
