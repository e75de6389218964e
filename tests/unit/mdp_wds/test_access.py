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


# --------------------------------------------------------------------------------------------
# Pinned by mutation testing (issue 21): a grant covers a whole name, never a prefix of it.

import re  # noqa: E402 - grouped with the tests that use it

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _reference_glob(pattern: str, name: str) -> bool:
    """`*` matches any run of characters (``:`` included); everything else matches itself."""
    if not pattern:
        return not name
    if pattern[0] == "*":
        return any(_reference_glob(pattern[1:], name[i:]) for i in range(len(name) + 1))
    return bool(name) and name[0] == pattern[0] and _reference_glob(pattern[1:], name[1:])


_alphabet = st.sampled_from(["q", "u", ":", "A", "*", ".", "["])


@given(st.text(_alphabet, min_size=1, max_size=6), st.text(_alphabet, max_size=8))
def test_grant_matching_equals_a_whole_name_glob(pattern: str, name: str) -> None:
    assert Grant.of([pattern]).allows(name) == _reference_glob(pattern, name)


def test_empty_patterns_grant_nothing() -> None:
    assert Grant.of(["", "quote:AAPL", ""]).patterns == ("quote:AAPL",)
    assert not Grant.of([""]).allows("")


@pytest.mark.parametrize(
    ("grant", "name"),
    [
        ("quote:AA", "quote:AAPL"),  # a prefix of the feed name grants nothing
        ("quote", "quote:AAPL"),
        ("quote:AAPL", "quote:AAPLX"),
        ("alerts:ho", "alerts:hod"),
        ("uote:AAPL", "quote:AAPL"),  # nor does a suffix
        ("quote:*:x", "quote:AAPL"),
    ],
)
def test_a_grant_that_is_only_part_of_a_name_does_not_grant_it(grant: str, name: str) -> None:
    assert not Grant.of([grant]).allows(name)
    with pytest.raises(FeedRefused) as refused:
        Grant.of([grant]).check(resolve_feed(name))
    assert (refused.value.code, refused.value.name) == (ErrorCode.FORBIDDEN_FEED, name)
    assert refused.value.message == f"the token does not grant {name!r}"
    assert str(refused.value) == refused.value.message


def test_refusals_name_the_feed_and_say_why() -> None:
    with pytest.raises(FeedRefused) as internal:
        resolve_feed("mdp:heartbeat:x")
    assert internal.value.name == "mdp:heartbeat:x"
    assert internal.value.message == "'mdp:heartbeat:x' is internal, not a feed"
    assert str(internal.value) == internal.value.message
    with pytest.raises(FeedRefused) as unknown:
        resolve_feed("nope")
    assert unknown.value.message == "'nope' is not a feed"
    with pytest.raises(FeedRefused) as pattern:
        resolve_feed("nope:*")
    known = re.fullmatch(r"'nope:\*' is not a feed pattern; known: (.*)", pattern.value.message)
    assert known is not None
    names = known.group(1).split(", ")
    assert names == sorted(names)
    assert "quote:*" in names
    assert all(resolve_feed(n).is_pattern for n in names)
