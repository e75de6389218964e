"""Settings machinery: the one place in the platform that reads ``os.environ``.

A settings class is a frozen, slotted, keyword-only dataclass whose fields declare their
environment variable with :func:`setting`. :func:`load` parses the environment once at start-up
and fails fast with a :class:`SettingsError` naming every bad variable, what was wrong and what
was expected, so a misconfigured pod dies at once with a readable message instead of failing
later in a stream. :func:`describe` turns the same declarations into the configuration
reference, so documentation cannot drift from code.

Example::

    @settings_class  # = @dataclass(frozen=True, slots=True, kw_only=True), lint- and type-aware
    class ProcessorSettings:
        prefetch: int = setting(env="MDP_PREFETCH", default=100, doc="AMQP prefetch.", min=1)

    settings = load(ProcessorSettings)
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import math
import os
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar, dataclass_transform
from urllib.parse import urlsplit, urlunsplit

from mdp_core.backoff import BackoffPolicy
from mdp_core.calendar import MarketCalendar

__all__ = [
    "CommonSettings",
    "Renamed",
    "Secret",
    "SettingDoc",
    "SettingsError",
    "describe",
    "load",
    "otel_variables",
    "resolve_finlight_key",
    "resolve_massive_key",
    "setting",
    "settings_class",
]

T = TypeVar("T")

_METADATA_KEY = "mdp_setting"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """The environment holds a missing or malformed setting.

    Attributes:
        problems: one human-readable sentence per bad variable.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems) if len(problems) == 1 else self._joined())

    def _joined(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"{len(self.problems)} settings are invalid:\n{lines}"


class Secret:
    """A string that must never be logged: its ``repr`` and ``str`` are ``Secret('***')``.

    Call :meth:`reveal` at the single point where the value is handed to a client library.
    Equality uses a constant-time comparison so it is safe for key checks.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call it only where the value leaves the process."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)


@dataclass(frozen=True, slots=True)
class Renamed:
    """A variable a setting was read from before a rename; still read for one minor release.

    Renames keep names true to the conventions (durations end in ``_SECONDS``, see the design
    contract) without breaking a deployment on upgrade: the old name still works and warns once.

    Attributes:
        env: the old environment variable.
        unit: the old variable's unit when it differs (``"milliseconds"``), for the reference.
        scale: what an old value is multiplied by to get the new unit (``0.001`` for ms to s).
    """

    env: str
    unit: str = ""
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class _Spec:
    env: str
    doc: str
    secret: bool
    min: float | None
    max: float | None
    choices: tuple[object, ...] | None
    renamed_from: tuple[Renamed, ...] = ()


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One documented setting, as listed in the configuration reference."""

    name: str
    env: str
    type: str
    default: str | None
    doc: str
    secret: bool
    required: bool


def setting(
    *,
    env: str,
    doc: str,
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] | None = None,
    secret: bool = False,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[object] | None = None,
    renamed_from: Sequence[Renamed] = (),
) -> Any:
    """Declare a settings field read from the environment variable ``env``.

    Args:
        env: the environment variable, e.g. ``"MDP_REDIS_URL"``.
        doc: one sentence for the configuration reference: what it controls and why.
        default: the value when the variable is unset; omit it to make the variable required.
        default_factory: a callable producing the default, for values built at load time.
        secret: the value is sensitive; the field must be typed :class:`Secret`.
        min: inclusive lower bound for numbers.
        max: inclusive upper bound for numbers.
        choices: the allowed values (after parsing); strings match case-insensitively.
        renamed_from: former names of the variable, read (and scaled) when ``env`` is unset,
            with a :class:`DeprecationWarning` once per process.

    Returns:
        A ``dataclasses.field`` carrying the declaration as metadata.
    """
    spec = _Spec(
        env=env,
        doc=doc,
        secret=secret,
        min=min,
        max=max,
        choices=tuple(choices) if choices is not None else None,
        renamed_from=tuple(renamed_from),
    )
    metadata = {_METADATA_KEY: spec}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(setting,))
def settings_class(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen, slotted, keyword-only dataclass of settings.

    Equivalent to ``@dataclass(frozen=True, slots=True, kw_only=True)``, but it also tells type
    checkers and linters that :func:`setting` is a field specifier, so a field without a
    ``default`` is known to be required and ``setting(...)`` is not mistaken for a mutable
    default.
    """
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


# --- parsing -------------------------------------------------------------------------------


class _BadValue(Exception):
    """Internal: a value did not parse; carries what was expected."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _describe_type(tp: Any) -> str:  # noqa: PLR0911 - one branch per supported type
    inner, optional = _unwrap_optional(tp)
    suffix = " (optional)" if optional else ""
    if inner is bool:
        return "boolean" + suffix
    if inner is int:
        return "integer" + suffix
    if inner is float:
        return "number" + suffix
    if inner is Secret:
        return "secret string" + suffix
    if inner is Path:
        return "path" + suffix
    if typing.get_origin(inner) is tuple:
        return f"comma-separated list of {_describe_type(typing.get_args(inner)[0])}" + suffix
    if typing.get_origin(inner) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(inner)) + suffix
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in inner) + suffix
    return "string" + suffix


def _parse_scalar(tp: Any, raw: str) -> object:  # noqa: C901, PLR0911, PLR0912
    text = raw.strip()
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _BadValue("a boolean (true/false, 1/0, yes/no, on/off)")
    if tp is int:
        try:
            return int(text, 10)
        except ValueError:
            raise _BadValue("an integer") from None
    if tp is float:
        try:
            value = float(text)
        except ValueError:
            raise _BadValue("a number") from None
        if not math.isfinite(value):
            raise _BadValue("a finite number")
        return value
    if tp is Secret:
        if not text:
            raise _BadValue("a non-empty secret")
        return Secret(text)
    if tp is Path:
        if not text:
            raise _BadValue("a non-empty path")
        return Path(text).expanduser()
    if tp is str:
        return text
    if tp is date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise _BadValue("a date (YYYY-MM-DD)") from None
    if typing.get_origin(tp) is Literal:
        for option in typing.get_args(tp):
            if str(option).lower() == text.lower():
                return option
        raise _BadValue("one of " + ", ".join(repr(a) for a in typing.get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if str(member.value).lower() == text.lower() or member.name.lower() == text.lower():
                return member
        raise _BadValue("one of " + ", ".join(repr(m.value) for m in tp))
    msg = f"unsupported settings type {tp!r}"
    raise TypeError(msg)


def _parse(tp: Any, raw: str) -> object:
    inner, optional = _unwrap_optional(tp)
    if optional and not raw.strip():
        return None
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        if len(args) != 2 or args[1] is not Ellipsis:
            msg = f"settings tuples must be tuple[X, ...]; found {inner!r}"
            raise TypeError(msg)
        items = [part for part in (p.strip() for p in raw.split(",")) if part]
        try:
            return tuple(_parse_scalar(args[0], item) for item in items)
        except _BadValue as exc:
            item_kind = exc.expected.removeprefix("a ").removeprefix("an ")
            raise _BadValue(f"a comma-separated list of {item_kind}") from None
    return _parse_scalar(inner, raw)


def _bounds_text(spec: _Spec) -> str:
    if spec.min is not None and spec.max is not None:
        return f" between {spec.min:g} and {spec.max:g}"
    if spec.min is not None:
        return f" >= {spec.min:g}"
    if spec.max is not None:
        return f" <= {spec.max:g}"
    return ""


def _check_constraints(spec: _Spec, value: object, expected: str) -> object:
    if spec.choices is not None:
        for choice in spec.choices:
            if choice == value or (
                isinstance(choice, str)
                and isinstance(value, str)
                and choice.lower() == value.lower()
            ):
                return choice
        raise _BadValue("one of " + ", ".join(repr(c) for c in spec.choices))
    if isinstance(value, int | float) and not isinstance(value, bool):
        too_low = spec.min is not None and value < spec.min
        too_high = spec.max is not None and value > spec.max
        if too_low or too_high:
            raise _BadValue(expected + _bounds_text(spec))
    return value


def _expectation(tp: Any) -> str:
    inner, _ = _unwrap_optional(tp)
    article = {
        int: "an integer",
        float: "a number",
        bool: "a boolean (true/false, 1/0, yes/no, on/off)",
    }
    return article.get(inner, "a " + _describe_type(inner))


def _settings_fields(cls: type) -> list[tuple[dataclasses.Field[Any], _Spec | None, Any]]:
    if not dataclasses.is_dataclass(cls):
        msg = f"{cls.__qualname__} is not a dataclass"
        raise TypeError(msg)
    hints = typing.get_type_hints(cls)
    return [
        (f, f.metadata.get(_METADATA_KEY), hints[f.name]) for f in dataclasses.fields(cls) if f.init
    ]


def _shown(value: object, secret: bool) -> str:
    if secret:
        return f"a value of {len(value) if isinstance(value, str) else '?'} characters"
    return repr(value)


#: Old variable names already warned about in this process (one warning each).
_WARNED: set[str] = set()


def _warn_renamed(old: Renamed, new: str, *, ignored: bool) -> None:
    """Warn once per process that ``old`` was renamed ``new``; shown whatever the filters say.

    Python hides a :class:`DeprecationWarning` raised outside ``__main__`` by default, which
    would make this one useless to an operator, so it is shown explicitly (once).
    """
    if old.env in _WARNED:
        return
    _WARNED.add(old.env)
    unit = f" (the new one is in seconds, the old in {old.unit})" if old.unit else ""
    fate = f"ignored because {new} is set" if ignored else "still read until the next minor release"
    message = f"{old.env} is deprecated, use {new}{unit}; {fate}"
    with warnings.catch_warnings():
        warnings.simplefilter("always", DeprecationWarning)
        warnings.warn(message, DeprecationWarning, stacklevel=4)  # the caller of load()


def _parse_scaled(tp: Any, raw: str, scale: float) -> object:
    """Parse ``raw``; an old variable's value is converted to the new unit (a float field)."""
    value = _parse(tp, raw)
    if scale == 1.0:
        return value
    if not isinstance(value, float):
        msg = f"only a float setting can be renamed with a scale; found {tp!r}"
        raise TypeError(msg)
    return value * scale


def _raw_value(spec: _Spec, env: Mapping[str, str]) -> tuple[str | None, str, float]:
    """The raw text, the variable it came from and its scale: the new name, else an old one."""
    raw = env.get(spec.env)
    for old in spec.renamed_from:
        if old.env in env:
            _warn_renamed(old, spec.env, ignored=raw is not None)
            if raw is None:
                return env[old.env], old.env, old.scale
    return raw, spec.env, 1.0


def load(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build a settings object from the environment.

    Args:
        cls: a dataclass whose fields were declared with :func:`setting`.
        environ: the variables to read; ``os.environ`` when omitted.
        **overrides: field values given by code (e.g. ``service_name``); they win over the
            environment and are not parsed.

    Raises:
        SettingsError: listing every missing or malformed variable.
        TypeError: if ``cls`` declares a field type the loader cannot parse.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for fld, spec, tp in _settings_fields(cls):
        if fld.name in overrides:
            values[fld.name] = overrides.pop(fld.name)
            continue
        if spec is None:
            continue  # a plain field: its dataclass default applies
        if spec.secret and _unwrap_optional(tp)[0] is not Secret:
            msg = f"{cls.__qualname__}.{fld.name} is declared secret but is not typed Secret"
            raise TypeError(msg)
        raw, source, scale = _raw_value(spec, env)
        if raw is None or (not raw.strip() and _unwrap_optional(tp)[0] is not str):
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                problems.append(f"{spec.env} is required ({spec.doc.rstrip('.')})")
            continue
        expected = _expectation(tp)
        try:
            values[fld.name] = _check_constraints(spec, _parse_scaled(tp, raw, scale), expected)
        except _BadValue as exc:
            wanted = exc.expected
            if wanted == expected:  # a type failure: say the bounds too, so one fix suffices
                wanted += _bounds_text(spec)
            secret = spec.secret or _unwrap_optional(tp)[0] is Secret
            if source != spec.env:
                wanted += f" (as {spec.env}, after conversion)"
            problems.append(f"{source} must be {wanted}; it was {_shown(raw, secret)}")
    if overrides:
        unknown = ", ".join(sorted(overrides))
        msg = f"{cls.__qualname__} has no field(s) {unknown}"
        raise TypeError(msg)
    if problems:
        raise SettingsError(problems)
    return cls(**values)


def describe(cls: type) -> list[SettingDoc]:
    """Document every environment-backed field of a settings class, in declaration order."""
    docs: list[SettingDoc] = []
    for fld, spec, tp in _settings_fields(cls):
        if spec is None:
            continue
        secret = spec.secret or _unwrap_optional(tp)[0] is Secret
        required = fld.default is dataclasses.MISSING and (
            fld.default_factory is dataclasses.MISSING
        )
        default: str | None
        if required:
            default = None
        elif secret and fld.default is None:
            # Nothing to hide: an unset secret is just unset.
            default = "unset"
        elif fld.default is not dataclasses.MISSING:
            # A secret's default is written in the source, so public (e.g. RabbitMQ's guest
            # URL); only values given at run time are secret, and those never reach this text.
            default = _default_text(fld.default)
        else:
            default = "(computed)"
        type_text = _describe_type(tp)
        if spec.choices is not None:
            type_text += " (one of " + ", ".join(repr(c) for c in spec.choices) + ")"
        elif spec.min is not None or spec.max is not None:
            type_text += _bounds_text(spec)
        docs.append(
            SettingDoc(
                name=fld.name,
                env=spec.env,
                type=type_text,
                default=default,
                doc=spec.doc + "".join(_renamed_text(old) for old in spec.renamed_from),
                secret=secret,
                required=required,
            )
        )
    return docs


def _renamed_text(old: Renamed) -> str:
    unit = f", in {old.unit}" if old.unit else ""
    return (
        f" Replaces `{old.env}`{unit}, which is still read (with a deprecation warning) "
        "until the next minor release."
    )


def _default_text(value: object) -> str:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# --- vendor keys ----------------------------------------------------------------------------


def _key_from_file(variable: str, environ: Mapping[str, str]) -> Secret | None:
    path_text = environ.get(variable, "").strip()
    if not path_text:
        return None
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problem = f"{variable} must name a readable file; it was {path_text!r} ({exc.strerror})"
        raise SettingsError([problem]) from exc
    if not text:
        raise SettingsError([f"{variable} must name a file holding a key; {path_text!r} is empty"])
    return Secret(text)


def _first_key(
    variables: Sequence[str], file_variable: str, environ: Mapping[str, str] | None
) -> Secret | None:
    env = os.environ if environ is None else environ
    for variable in variables:
        value = env.get(variable, "").strip()
        if value:
            return Secret(value)
    return _key_from_file(file_variable, env)


def resolve_massive_key(environ: Mapping[str, str] | None = None) -> Secret | None:
    """The Massive API key: ``MASSIVE_API_KEY``, then ``POLYGON_API_KEY``, then a key file.

    The file is the one named by ``MDP_MASSIVE_API_KEY_FILE`` (a mounted Kubernetes secret),
    with surrounding whitespace stripped. Returns None when no source is set, so callers decide
    whether a key is required.

    Raises:
        SettingsError: if the key file is named but unreadable or empty.
    """
    return _first_key(("MASSIVE_API_KEY", "POLYGON_API_KEY"), "MDP_MASSIVE_API_KEY_FILE", environ)


def resolve_finlight_key(environ: Mapping[str, str] | None = None) -> Secret | None:
    """The Finlight API key: ``FINLIGHT_API_KEY``, then the file ``MDP_FINLIGHT_API_KEY_FILE``.

    Raises:
        SettingsError: if the key file is named but unreadable or empty.
    """
    return _first_key(("FINLIGHT_API_KEY",), "MDP_FINLIGHT_API_KEY_FILE", environ)


def otel_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The standard ``OTEL_*`` variables that are set (non-empty).

    The OpenTelemetry SDK reads these itself; :func:`mdp_core.telemetry.configure_telemetry`
    only needs them to decide whether to install the SDK at all.
    """
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith("OTEL_") and v.strip()}


# --- what every service shares --------------------------------------------------------------


def _with_database(url: str, database: int) -> str:
    """``url`` with its Redis database number replaced (keeps credentials and options)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _cluster_url(url: str) -> str:
    """``url`` as a Redis Cluster URL (``redis+cluster://``, database 0: a cluster has no other).

    The scheme is what ``mdp_cache.client.create_redis`` reads, so no caller needs the flag.
    """
    parts = urlsplit(url)
    scheme = parts.scheme if parts.scheme.endswith("+cluster") else f"{parts.scheme}+cluster"
    return urlunsplit(parts._replace(scheme=scheme, path="/0"))


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@settings_class
class CommonSettings:
    """Settings every mdp service shares; services extend this with their own class.

    ``mdc_redis_url`` and ``wdc_redis_url`` default to ``redis_url`` with database 0 (market
    data cache) and 1 (widget data cache), so one variable configures a single-Redis setup.
    """

    service_name: str = setting(
        env="MDP_SERVICE_NAME",
        default="mdp",
        doc="Name reported in logs, traces and health; entry points pass their own.",
    )
    log_level: str = setting(
        env="MDP_LOG_LEVEL",
        default="INFO",
        choices=_LOG_LEVELS,
        doc="Minimum level of log records emitted.",
    )
    log_format: Literal["auto", "json", "console"] = setting(
        env="MDP_LOG_FORMAT",
        default="auto",
        doc="Log renderer: json lines, coloured console, or auto (console on a TTY, else json).",
    )
    health_host: str = setting(
        env="MDP_HEALTH_HOST",
        default="127.0.0.1",
        doc="Address the /livez, /readyz and /metrics server binds; 0.0.0.0 in containers.",
    )
    health_port: int = setting(
        env="MDP_HEALTH_PORT",
        default=8080,
        min=0,
        max=65535,
        doc="Port of the health and metrics server (0 picks a free port).",
    )
    redis_url: str = setting(
        env="MDP_REDIS_URL",
        default="redis://127.0.0.1:6379/0",
        doc="Default Redis for both caches when the specific URLs are not set.",
    )
    mdc_redis_url: str = setting(
        env="MDP_MDC_REDIS_URL",
        default="",
        doc="Market data cache (reference data); empty means redis_url with database 0.",
    )
    wdc_redis_url: str = setting(
        env="MDP_WDC_REDIS_URL",
        default="",
        doc="Widget data cache (analyzer output and pub/sub); empty means redis_url database 1.",
    )
    redis_cluster: bool = setting(
        env="MDP_REDIS_CLUSTER",
        default=False,
        doc="MDC and WDC are Redis Clusters: the Redis URLs name any node of each (their "
        "database becomes 0), clients follow the cluster, widget pub/sub is sharded.",
    )
    amqp_url: Secret = setting(
        env="MDP_AMQP_URL",
        default=Secret("amqp://guest:guest@127.0.0.1:5672/"),
        secret=True,
        doc="RabbitMQ URL of the market data queues, or the comma-separated URLs of a "
        "cluster's nodes (connections go to the first that answers and move to the next when "
        "a node is lost); secret because it carries a password.",
    )
    freshness_seconds: float = setting(
        env="MDP_FRESHNESS_SECONDS",
        default=5.0,
        min=0.001,
        doc="Events older than this at consumption are stale and skipped (queue TTL twin).",
    )
    market_closures: tuple[date, ...] = setting(
        env="MDP_MARKET_CLOSURES",
        default=(),
        doc="Comma-separated extra full-day market closures (YYYY-MM-DD) beyond the standing "
        "NYSE holidays, e.g. a national day of mourning; the listener then stays away.",
    )

    retry_initial_seconds: float = setting(
        env="MDP_RETRY_INITIAL_SECONDS",
        default=0.1,
        min=0.0,
        doc="First pause before retrying an operation that failed for want of a connection "
        "(a Redis write, the broker); doubles per failure (see mdp_core.backoff).",
    )
    retry_max_seconds: float = setting(
        env="MDP_RETRY_MAX_SECONDS",
        default=5.0,
        min=0.0,
        doc="Cap of that pause; no retry waits longer.",
    )
    retry_jitter: float = setting(
        env="MDP_RETRY_JITTER",
        default=0.5,
        min=0.0,
        max=1.0,
        doc="Fraction of each retry pause taken off at random, so copies that failed together "
        "do not retry together (1 is full jitter). Also the jitter of worker restarts.",
    )

    @property
    def retry_backoff(self) -> BackoffPolicy:
        """The backoff of connection retries (``MDP_RETRY_*``; the cap wins over the start)."""
        return BackoffPolicy.from_settings(
            self.retry_initial_seconds, self.retry_max_seconds, self.retry_jitter
        )

    @property
    def calendar(self) -> MarketCalendar:
        """The market calendar, with :attr:`market_closures` added to the standing rules."""
        return MarketCalendar(self.market_closures)

    def __post_init__(self) -> None:
        """Fill the cache URLs that were left empty from ``redis_url``."""
        if not self.mdc_redis_url:
            object.__setattr__(self, "mdc_redis_url", _with_database(self.redis_url, 0))
        if not self.wdc_redis_url:
            object.__setattr__(self, "wdc_redis_url", _with_database(self.redis_url, 1))
        if self.redis_cluster:
            for name in ("mdc_redis_url", "wdc_redis_url"):
                object.__setattr__(self, name, _cluster_url(getattr(self, name)))
