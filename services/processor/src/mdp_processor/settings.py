"""Configuration of the market data processor (MDP), read once at start-up."""

from __future__ import annotations

from mdp_core.backoff import BackoffPolicy
from mdp_core.settings import CommonSettings, Renamed, setting, settings_class
from mdp_processor.pacing import (
    DEFAULT_BUSY_FRACTION,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MAX_INTERVAL_SECONDS,
    DEFAULT_SATURATED_MAX_INTERVAL_SECONDS,
    DEFAULT_SATURATION_SECONDS,
)

__all__ = ["ProcessorSettings"]


@settings_class
class ProcessorSettings(CommonSettings):
    """Settings of the market data processor; queue names and TTLs come from ``mdp_queues``."""

    analyzers: tuple[str, ...] = setting(
        env="MDP_ANALYZERS",
        default=("leaderboard", "router", "top_trades"),
        doc="Analyzers to run, by registered name (entry point group mdp.analyzers).",
    )
    workers: int = setting(
        env="MDP_WORKERS",
        default=1,
        min=1,
        max=64,
        doc="Worker processes per pod (competing consumers); up to the cores available.",
    )
    prefetch: int = setting(
        env="MDP_PREFETCH",
        default=1_000,
        min=1,
        doc="AMQP prefetch per queue a worker consumes (each on its own channel): messages "
        "the broker may push before an ack.",
    )
    batch_messages: int = setting(
        env="MDP_BATCH_MESSAGES",
        default=100,
        min=1,
        doc="Messages pulled from a queue per delivery batch.",
    )
    flush_interval_seconds: float = setting(
        env="MDP_FLUSH_INTERVAL_SECONDS",
        default=DEFAULT_INTERVAL_SECONDS,
        min=0.001,
        renamed_from=[Renamed("MDP_FLUSH_INTERVAL_MS", unit="milliseconds", scale=0.001)],
        doc="Shortest time between the starts of two flushes to Redis: after a cheap flush, "
        "events wait this long for the next (freshness of widgets) and are coalesced "
        "meanwhile; the pacing stretches it up to MDP_FLUSH_MAX_INTERVAL_SECONDS after "
        "costly ones.",
    )
    flush_max_interval_seconds: float = setting(
        env="MDP_FLUSH_MAX_INTERVAL_SECONDS",
        default=DEFAULT_MAX_INTERVAL_SECONDS,
        min=0.001,
        doc="Longest time between the starts of two flushes that the pacing adds after a "
        "costly flush (taken as MDP_FLUSH_INTERVAL_SECONDS when below it): the freshness a "
        "large universe may give up so that small flushes do not take the worker's time.",
    )
    flush_busy_fraction: float = setting(
        env="MDP_FLUSH_BUSY_FRACTION",
        default=DEFAULT_BUSY_FRACTION,
        min=0.01,
        max=1.0,
        doc="Share of the time flushes may take while the worker keeps up: the next flush "
        "starts the last one's duration divided by this after it started, between "
        "MDP_FLUSH_INTERVAL_SECONDS and MDP_FLUSH_MAX_INTERVAL_SECONDS; 1 paces by the "
        "interval alone.",
    )
    flush_saturated_max_interval_seconds: float = setting(
        env="MDP_FLUSH_SATURATED_MAX_INTERVAL_SECONDS",
        default=DEFAULT_SATURATED_MAX_INTERVAL_SECONDS,
        min=0.001,
        doc="The pacing's ceiling while the worker is saturated (see MDP_SATURATION_SECONDS): "
        "its queue always has a backlog, which sets the events' wait, and fewer, larger "
        "flushes raise its throughput. Not above MDP_FLUSH_MAX_INTERVAL_SECONDS turns this "
        "off.",
    )
    saturation_seconds: float = setting(
        env="MDP_SATURATION_SECONDS",
        default=DEFAULT_SATURATION_SECONDS,
        min=0.05,
        doc="How long a consumer must have been handed batch after batch without waiting for "
        "one (its queue never drained) for the worker to count as saturated; it is no "
        "longer as soon as that consumer waits. Longer than a burst the worker drains "
        "without falling behind.",
    )
    future_tolerance_seconds: float = setting(
        env="MDP_FUTURE_TOLERANCE_SECONDS",
        default=300.0,
        min=0.0,
        doc="Events stamped further than this ahead of the clock are dropped as bad "
        "(bad_events{future}): a garbage timestamp must not move the trading day away. Live "
        "data is never minutes ahead; a simulator replaying a later hour than the wall "
        "clock's needs more (86400, a day).",
    )
    flush_max_events: int = setting(
        env="MDP_FLUSH_MAX_EVENTS",
        default=20_000,
        min=1,
        doc="Events waiting that trigger an early flush.",
    )
    max_in_flight: int = setting(
        env="MDP_MAX_IN_FLIGHT",
        default=500,
        min=1,
        doc="Concurrent background tasks per worker (reference data fetches).",
    )
    board_size: int = setting(
        env="MDP_BOARD_SIZE",
        default=100,
        min=1,
        max=1_000,
        doc="Rows per leaderboard document.",
    )
    massive_rest_url: str = setting(
        env="MDP_MASSIVE_REST_URL",
        default="https://api.massive.com",
        doc="Base URL of the Massive REST API (the simulator's in tests and the demo).",
    )
    rvol_days: int = setting(
        env="MDP_RVOL_DAYS",
        default=0,
        min=0,
        max=60,
        doc="Trading days averaged by the time-of-day volume profiles behind the rows' "
        "`rvol_tod` (5-minute aggregates from the REST API, one request per symbol and day, "
        "cached in MDC per trading day); 0 turns them off: the default, since for a full "
        "market of 10,000 symbols the day's first lookups cost about 500 CPU-seconds and 5.5 GB "
        "of downloads (docs/performance.md); the demo uses 20.",
    )
    worker_restart_initial_seconds: float = setting(
        env="MDP_WORKER_RESTART_INITIAL_SECONDS",
        default=0.5,
        min=0.001,
        doc="First delay before restarting a worker process that exited; doubles per exit in "
        "a row (jittered by MDP_RETRY_JITTER), reset once a worker stayed up a minute.",
    )
    worker_restart_max_seconds: float = setting(
        env="MDP_WORKER_RESTART_MAX_SECONDS",
        default=30.0,
        min=0.001,
        doc="Cap of the worker restart delay.",
    )
    heartbeat_seconds: float = setting(
        env="MDP_HEARTBEAT_SECONDS",
        default=5.0,
        min=0.1,
        doc="Interval of the heartbeat written to MDC.",
    )

    @property
    def worker_restart(self) -> BackoffPolicy:
        """The backoff of worker restarts (``MDP_WORKER_RESTART_*``, ``MDP_RETRY_JITTER``)."""
        return BackoffPolicy.from_settings(
            self.worker_restart_initial_seconds,
            self.worker_restart_max_seconds,
            self.retry_jitter,
            stable_after_seconds=60.0,
        )
