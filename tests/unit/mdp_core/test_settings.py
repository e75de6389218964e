import enum
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from mdp_core.settings import (
    CommonSettings,
    Secret,
    SettingsError,
    describe,
    load,
    resolve_finlight_key,
    resolve_massive_key,
    setting,
    settings_class,
)


class Feed(enum.Enum):
    REALTIME = "RealTime"
    DELAYED = "Delayed"


@settings_class
class Sample:
    prefetch: int = setting(env="MDP_PREFETCH", default=100, min=1, doc="AMQP prefetch.")
    ratio: float = setting(env="MDP_RATIO", default=0.5, min=0, max=1, doc="A ratio.")
    enabled: bool = setting(env="MDP_ENABLED", default=False, doc="A switch.")
    data_dir: Path = setting(env="MDP_DATA_DIR", default=Path("/tmp/x"), doc="A dir.")  # noqa: S108
    symbols: tuple[str, ...] = setting(env="MDP_SYMBOLS", default=(), doc="Symbols.")
    ports: tuple[int, ...] = setting(env="MDP_PORTS", default=(1, 2), doc="Ports.")
    feed: Feed = setting(env="MDP_FEED", default=Feed.REALTIME, doc="Feed.")
    mode: Literal["fast", "safe"] = setting(env="MDP_MODE", default="safe", doc="Mode.")
    colour: str = setting(env="MDP_COLOUR", default="red", choices=("red", "blue"), doc="C.")
    token: Secret | None = setting(env="MDP_TOKEN", default=None, doc="A token.")
    limit: int | None = setting(env="MDP_LIMIT", default=None, doc="Optional limit.")
    label: str = field(default="plain")


@dataclass(frozen=True, slots=True, kw_only=True)
class Required:
    url: str = setting(env="MDP_REQUIRED_URL", doc="Where to connect.")
    count: int = setting(env="MDP_REQUIRED_COUNT", doc="How many.")


def test_defaults_when_environment_is_empty() -> None:
    s = load(Sample, {})
    assert s == Sample()
    assert s.prefetch == 100
    assert s.feed is Feed.REALTIME


def test_every_supported_type_parses() -> None:
    s = load(
        Sample,
        {
            "MDP_PREFETCH": " 7 ",
            "MDP_RATIO": "0.25",
            "MDP_ENABLED": "Yes",
            "MDP_DATA_DIR": "/var/data",
            "MDP_SYMBOLS": "AAPL, MSFT,,TSLA ",
            "MDP_PORTS": "80,443",
            "MDP_FEED": "delayed",
            "MDP_MODE": "FAST",
            "MDP_COLOUR": "Blue",
            "MDP_TOKEN": "t0ken",
            "MDP_LIMIT": "3",
        },
    )
    assert s.prefetch == 7
    assert s.ratio == 0.25
    assert s.enabled is True
    assert s.data_dir == Path("/var/data")
    assert s.symbols == ("AAPL", "MSFT", "TSLA")
    assert s.ports == (80, 443)
    assert s.feed is Feed.DELAYED
    assert s.mode == "fast"
    assert s.colour == "blue"
    assert s.token is not None
    assert s.token.reveal() == "t0ken"
    assert s.limit == 3


@pytest.mark.parametrize("raw", ["0", "false", "NO", "off"])
def test_false_spellings(raw: str) -> None:
    assert load(Sample, {"MDP_ENABLED": raw}).enabled is False


def test_empty_optional_means_none_and_empty_typed_value_means_default() -> None:
    s = load(Sample, {"MDP_LIMIT": "", "MDP_PREFETCH": "  "})
    assert s.limit is None
    assert s.prefetch == 100


@pytest.mark.parametrize(
    ("env", "raw", "message"),
    [
        ("MDP_PREFETCH", "abc", "MDP_PREFETCH must be an integer >= 1; it was 'abc'"),
        ("MDP_PREFETCH", "0", "MDP_PREFETCH must be an integer >= 1; it was '0'"),
        ("MDP_RATIO", "1.5", "MDP_RATIO must be a number between 0 and 1; it was '1.5'"),
        ("MDP_RATIO", "nan", "MDP_RATIO must be a finite number; it was 'nan'"),
        ("MDP_ENABLED", "maybe", "MDP_ENABLED must be a boolean"),
        ("MDP_PORTS", "80,x", "MDP_PORTS must be a comma-separated list of integer; it was '80,x'"),
        ("MDP_FEED", "live", "MDP_FEED must be one of 'RealTime', 'Delayed'; it was 'live'"),
        ("MDP_MODE", "slow", "MDP_MODE must be one of 'fast', 'safe'; it was 'slow'"),
        ("MDP_COLOUR", "green", "MDP_COLOUR must be one of 'red', 'blue'; it was 'green'"),
    ],
)
def test_bad_values_name_variable_problem_and_expectation(env: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(Sample, {env: raw})
    assert str(info.value).startswith(message)
    assert info.value.problems == (str(info.value),)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(SettingsError) as info:
        load(Sample, {"MDP_PREFETCH": "x", "MDP_RATIO": "y"})
    assert len(info.value.problems) == 2
    assert "2 settings are invalid" in str(info.value)
    assert "MDP_PREFETCH" in str(info.value)
    assert "MDP_RATIO" in str(info.value)


def test_required_variables() -> None:
    with pytest.raises(SettingsError, match="MDP_REQUIRED_URL is required"):
        load(Required, {"MDP_REQUIRED_COUNT": "1"})
    r = load(Required, {"MDP_REQUIRED_URL": "redis://x", "MDP_REQUIRED_COUNT": "2"})
    assert (r.url, r.count) == ("redis://x", 2)


def test_overrides_win_and_unknown_overrides_are_refused() -> None:
    s = load(Sample, {"MDP_PREFETCH": "5"}, prefetch=9, label="given")
    assert (s.prefetch, s.label) == (9, "given")
    with pytest.raises(TypeError, match="no field"):
        load(Sample, {}, nonsense=1)


def test_settings_are_frozen() -> None:
    s = load(Sample, {})
    with pytest.raises(FrozenInstanceError):
        s.prefetch = 3  # type: ignore[misc]


def test_secret_never_shows_its_value() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "Secret('***')"
    assert f"{secret}" == "Secret('***')"
    assert "hunter2" not in repr(load(Sample, {"MDP_TOKEN": "hunter2"}))
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("other")
    assert hash(secret) == hash(Secret("hunter2"))
    assert bool(secret)
    assert not Secret("")
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2"  # noqa: S301


def test_bad_secret_values_are_not_echoed() -> None:
    @settings_class
    class WithSecret:
        key: Secret = setting(env="MDP_KEY", doc="Key.", secret=True, choices=(Secret("a"),))

    with pytest.raises(SettingsError) as info:
        load(WithSecret, {"MDP_KEY": "leaked-value"})
    assert "leaked-value" not in str(info.value)
    assert "12 characters" in str(info.value)


def test_secret_flag_requires_secret_type() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Wrong:
        key: str = setting(env="MDP_KEY", doc="Key.", default="", secret=True)

    with pytest.raises(TypeError, match="not typed Secret"):
        load(Wrong, {})


def test_settings_class_is_a_frozen_slotted_kw_only_dataclass() -> None:
    assert Sample.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in vars(Sample)
    with pytest.raises(TypeError):
        Sample(1)  # type: ignore[call-arg]


def test_load_refuses_non_dataclasses() -> None:
    with pytest.raises(TypeError, match="not a dataclass"):
        load(int, {})


def test_describe_lists_every_env_field() -> None:
    docs = {d.env: d for d in describe(Sample)}
    assert "label" not in {d.name for d in docs.values()}
    assert docs["MDP_PREFETCH"].type == "integer >= 1"
    assert docs["MDP_PREFETCH"].default == "100"
    assert docs["MDP_PREFETCH"].doc == "AMQP prefetch."
    assert docs["MDP_SYMBOLS"].type == "comma-separated list of string"
    assert docs["MDP_PORTS"].default == "1,2"
    assert docs["MDP_FEED"].default == "RealTime"
    assert docs["MDP_TOKEN"].secret
    assert docs["MDP_TOKEN"].default == "unset"  # not "***": there is no value to hide
    assert docs["MDP_LIMIT"].type == "integer (optional)"
    assert docs["MDP_COLOUR"].type == "string (one of 'red', 'blue')"
    assert not docs["MDP_PREFETCH"].required
    required = describe(Required)
    assert all(d.required and d.default is None for d in required)


def test_common_settings_defaults_and_derived_urls() -> None:
    s = load(CommonSettings, {}, service_name="listener")
    assert s.service_name == "listener"
    assert s.log_level == "INFO"
    assert s.log_format == "auto"
    assert s.health_host == "127.0.0.1"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.mdc_redis_url == "redis://127.0.0.1:6379/0"
    assert s.wdc_redis_url == "redis://127.0.0.1:6379/1"
    assert s.freshness_seconds == 5.0
    assert "guest" not in repr(s)
    custom = load(
        CommonSettings,
        {
            "MDP_REDIS_URL": "redis://:pw@cache:6380/5",
            "MDP_WDC_REDIS_URL": "redis://wdc:6379/3",
            "MDP_LOG_LEVEL": "debug",
            "MDP_LOG_FORMAT": "json",
        },
    )
    assert custom.mdc_redis_url == "redis://:pw@cache:6380/0"
    assert custom.wdc_redis_url == "redis://wdc:6379/3"
    assert custom.log_level == "DEBUG"
    assert custom.log_format == "json"


def test_common_settings_fail_fast() -> None:
    with pytest.raises(SettingsError, match="MDP_HEALTH_PORT must be an integer between 0"):
        load(CommonSettings, {"MDP_HEALTH_PORT": "70000"})
    with pytest.raises(SettingsError, match="MDP_LOG_FORMAT must be one of 'auto'"):
        load(CommonSettings, {"MDP_LOG_FORMAT": "xml"})
    envs = [d.env for d in describe(CommonSettings)]
    assert envs[0] == "MDP_SERVICE_NAME"
    assert all(env.startswith("MDP_") for env in envs)


def test_load_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDP_PREFETCH", "42")
    assert load(Sample).prefetch == 42


def test_massive_key_resolution_order(tmp_path: Path) -> None:
    key_file = tmp_path / "massive.txt"
    key_file.write_text("  from-file\n")
    everything = {
        "MASSIVE_API_KEY": "m",
        "POLYGON_API_KEY": "p",
        "MDP_MASSIVE_API_KEY_FILE": str(key_file),
    }

    def reveal(env: dict[str, str]) -> str | None:
        key = resolve_massive_key(env)
        return None if key is None else key.reveal()

    assert reveal(everything) == "m"
    assert reveal({**everything, "MASSIVE_API_KEY": " "}) == "p"
    assert reveal({"MDP_MASSIVE_API_KEY_FILE": str(key_file)}) == "from-file"
    assert reveal({}) is None


def test_key_file_problems_are_settings_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(SettingsError, match="MDP_MASSIVE_API_KEY_FILE must name a readable file"):
        resolve_massive_key({"MDP_MASSIVE_API_KEY_FILE": str(missing)})
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        resolve_finlight_key({"MDP_FINLIGHT_API_KEY_FILE": str(empty)})


def test_finlight_key_resolution(tmp_path: Path) -> None:
    key_file = tmp_path / "finlight.txt"
    key_file.write_text("f-file")
    env = {"MDP_FINLIGHT_API_KEY_FILE": str(key_file)}
    key = resolve_finlight_key(env)
    assert key is not None
    assert key.reveal() == "f-file"
    direct = resolve_finlight_key({**env, "FINLIGHT_API_KEY": "f-env"})
    assert direct is not None
    assert direct.reveal() == "f-env"
    assert resolve_finlight_key({}) is None


def test_redis_cluster_turns_the_cache_urls_into_cluster_urls_of_database_0() -> None:
    plain = CommonSettings(redis_url="redis://h:7000/3")
    assert (plain.mdc_redis_url, plain.wdc_redis_url) == ("redis://h:7000/0", "redis://h:7000/1")
    both = CommonSettings(redis_url="redis://h:7000/3", redis_cluster=True)
    assert both.mdc_redis_url == both.wdc_redis_url == "redis+cluster://h:7000/0"
    apart = CommonSettings(
        mdc_redis_url="rediss://u:p@m:1/2",
        wdc_redis_url="redis+cluster://w:2/0",
        redis_cluster=True,
    )
    assert apart.mdc_redis_url == "rediss+cluster://u:p@m:1/0"
    assert apart.wdc_redis_url == "redis+cluster://w:2/0"
