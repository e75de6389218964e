"""Every service answers --help and --version without starting, and refuses other arguments."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import version

import pytest

from mdp_core.settings import Secret, setting, settings_class
from mdp_runtime import parse_service_arguments, settings_help
from mdp_runtime.command_line import plain_text

#: console script -> (module holding main, an environment variable its help must list)
SERVICES = {
    "mdp-processor": ("mdp_processor.__main__", "MDP_ANALYZERS"),
    "mdp-listener": ("mdp_listener.__main__", "MDP_MDQ_PREFIX"),
    "mdp-news-listener": ("mdp_news_listener.__main__", "MDP_AMQP_URL"),
    "mdp-news-processor": ("mdp_news_processor.__main__", "MDP_AMQP_URL"),
    "mdp-scanner": ("mdp_scanner.__main__", "MDP_LOG_LEVEL"),
    "mdp-wds": ("mdp_wds.__main__", "MDP_WDS_MAX_CONNECTIONS"),
    "mdp-scp": ("mdp_scp.__main__", "MDP_SCP_SESSION_SECRET"),
}


def run_main(module: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    main: Callable[..., object] = importlib.import_module(module).main
    monkeypatch.setattr("sys.argv", ["prog", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return code if isinstance(code, int) else 1


@pytest.mark.parametrize("script", sorted(SERVICES))
def test_help_lists_the_environment_and_starts_nothing(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module, variable = SERVICES[script]
    assert run_main(module, ["--help"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {script}")
    assert "environment variables:" in out
    assert variable in out


@pytest.mark.parametrize("script", sorted(SERVICES))
def test_version_and_unknown_arguments(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module, _ = SERVICES[script]
    assert run_main(module, ["--version"], monkeypatch) == 0
    assert capsys.readouterr().out.strip() == f"{script} {version(script)}"
    assert run_main(module, ["--no-such-option"], monkeypatch) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@settings_class
class Example:
    token: Secret = setting(env="MDP_X_TOKEN", doc="A secret.")
    name: str = setting(env="MDP_X_NAME", default="", doc="Empty by default.")
    count: int = setting(env="MDP_X_COUNT", default=3, min=1, doc="How many.")


def test_settings_help_marks_required_secret_and_empty_defaults() -> None:
    text = settings_help([Example, Example])
    assert text.count("MDP_X_TOKEN") == 1  # listed once however many classes repeat it
    assert "MDP_X_TOKEN  (secret string; required)" in text
    assert "MDP_X_NAME  (string; default empty)" in text
    assert "MDP_X_COUNT  (integer >= 1; default 3)" in text


def test_returns_quietly_without_arguments() -> None:
    parse_service_arguments("mdp-runtime", doc="X.", settings=[], argv=[])


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (":class:`~mdp_listener.listener.MassiveListener`", "MassiveListener"),
        (":mod:`mdp_core.calendar` and ``MDP_X``", "mdp_core.calendar and MDP_X"),
        ("see :meth:`Scanner.run` (``--help``)", "see Scanner.run (--help)"),
        ("no markup: a `single` backquote stays", "no markup: a `single` backquote stays"),
    ],
)
def test_plain_text_removes_sphinx_markup(text: str, plain: str) -> None:
    assert plain_text(text) == plain
