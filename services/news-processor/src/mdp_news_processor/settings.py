"""Configuration of the Finlight data processor (FDP), read once at start-up."""

from __future__ import annotations

from mdp_core.settings import CommonSettings, setting, settings_class

__all__ = ["NewsProcessorSettings"]


@settings_class
class NewsProcessorSettings(CommonSettings):
    """Settings of the news processor; queue names and TTLs come from ``mdp_queues``."""

    prefetch: int = setting(
        env="MDP_NEWS_PREFETCH",
        default=50,
        min=1,
        doc="AMQP prefetch of the news queue (articles are few; a small window is plenty).",
    )
    batch_wait_seconds: float = setting(
        env="MDP_NEWS_BATCH_WAIT_SECONDS",
        default=0.1,
        min=0.001,
        doc="Longest wait for more messages before a batch is written to WDC.",
    )
    latest_max_len: int = setting(
        env="MDP_NEWS_LATEST_MAX_LEN",
        default=1_000,
        min=1,
        doc="Cap of the latest-news feed (news:latest).",
    )
    ticker_max_len: int = setting(
        env="MDP_NEWS_TICKER_MAX_LEN",
        default=100,
        min=1,
        doc="Cap of each per-ticker news feed (news:ticker:{symbol}).",
    )
    latest_ttl_seconds: int = setting(
        env="MDP_NEWS_LATEST_TTL_SECONDS",
        default=2 * 86_400,
        min=60,
        doc="Seconds the latest-news feed lives after its last article.",
    )
    ticker_ttl_seconds: int = setting(
        env="MDP_NEWS_TICKER_TTL_SECONDS",
        default=7 * 86_400,
        min=60,
        doc="Seconds a per-ticker news feed lives after its last article.",
    )
    heartbeat_seconds: float = setting(
        env="MDP_NEWS_PROCESSOR_HEARTBEAT_SECONDS",
        default=5.0,
        min=0.5,
        doc="Interval of the heartbeat written to MDC for the control plane.",
    )
