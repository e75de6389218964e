"""A provider key goes in clear to loopback only, and each service holding one says so at start."""

from __future__ import annotations

import asyncio

import pytest

from mdp_core.cleartext import cleartext_problem, is_loopback
from mdp_listener import __main__ as listener_main
from mdp_news_listener import __main__ as news_main
from mdp_processor import __main__ as processor_main
from mdp_runtime import ConfigError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("api.massive.com", False),
        ("localhost.example", False),
        ("", False),
    ],
)
def test_loopback_is_this_machine_only(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "url",
    [
        "wss://socket.massive.com",
        "https://api.massive.com",
        "ws://127.0.0.1:8765",
        "http://localhost:8000/v2",
        "http://[::1]:80",
        "WS://127.0.0.1",
    ],
)
def test_tls_anywhere_and_plain_to_loopback_are_fine(url: str) -> None:
    assert cleartext_problem(url, "MDP_X_URL") is None


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("ws://wss.finlight.me", "wss://"),
        ("http://api.massive.com", "https://"),
        ("HTTP://10.0.0.1:80", "https://"),
        ("http://localhost.example", "https://"),
    ],
)
def test_plain_to_another_host_is_refused_with_the_fix(url: str, hint: str) -> None:
    problem = cleartext_problem(url, "MDP_X_URL")
    assert problem is not None
    assert problem.startswith("MDP_X_URL sends the API key in clear to ")
    assert hint in problem


def test_a_url_that_does_not_parse_is_refused() -> None:
    assert cleartext_problem("http://[::1", "MDP_X_URL") == "MDP_X_URL is not a URL"


def test_the_listener_refuses_a_plain_feed_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASSIVE_API_KEY", "a-key")
    monkeypatch.setenv("MDP_MASSIVE_SECURE", "false")
    monkeypatch.setenv("MDP_MASSIVE_FEED", "socket.massive.com:80")
    with pytest.raises(ConfigError, match=r"in clear to socket\.massive\.com: use wss://"):
        listener_main._load()
    monkeypatch.setenv("MDP_MASSIVE_FEED", "127.0.0.1:8765")  # the simulator: fine
    settings, _ = listener_main._load()
    assert settings.feed == "127.0.0.1:8765"


@pytest.mark.parametrize("variable", ["MDP_FINLIGHT_WSS_URL", "MDP_FINLIGHT_BASE_URL"])
def test_the_news_listener_refuses_plain_urls_off_loopback(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("FINLIGHT_API_KEY", "a-key")
    monkeypatch.setenv(variable, "http://finlight.example/x")
    with pytest.raises(ConfigError, match=f"{variable} sends the API key in clear"):
        news_main._load()
    monkeypatch.setenv(variable, "http://127.0.0.1:9/x")
    news_main._load()


def test_the_processor_refuses_a_plain_rest_url_off_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MDP_MASSIVE_REST_URL", "http://api.massive.com")
    with pytest.raises(ConfigError, match="MDP_MASSIVE_REST_URL sends the API key in clear"):
        asyncio.run(processor_main.serve(asyncio.Event()))
