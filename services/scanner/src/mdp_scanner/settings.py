"""Configuration of the market data scanner (MDS), read once from ``MDP_SCANNER_*``."""

from __future__ import annotations

from mdp_core.settings import CommonSettings, setting, settings_class

__all__ = ["ScannerSettings"]


@settings_class
class ScannerSettings(CommonSettings):
    """What the MDS needs beyond the common settings (it reads and writes WDC only)."""

    analyzers: tuple[str, ...] = setting(
        env="MDP_SCANNER_ANALYZERS",
        default=("daily_range",),
        doc="Analyzers to run, by entry point name (group mdp.analyzers).",
    )
    batch_max: int = setting(
        env="MDP_SCANNER_BATCH_MAX",
        default=1_000,
        min=1,
        doc="Most pub/sub messages folded into one batch (one write pipeline per batch).",
    )
    dedup_alerts: bool = setting(
        env="MDP_SCANNER_DEDUP_ALERTS",
        default=True,
        doc="Append each list-feed element (alert) once across replicas with a SET NX marker.",
    )
    backoff_initial_seconds: float = setting(
        env="MDP_SCANNER_BACKOFF_INITIAL_SECONDS",
        default=0.2,
        min=0.001,
        doc="First delay before reconnecting after Redis was lost.",
    )
    backoff_max_seconds: float = setting(
        env="MDP_SCANNER_BACKOFF_MAX_SECONDS",
        default=10.0,
        min=0.01,
        doc="Cap of the exponential reconnect delay (with jitter).",
    )
    keepalive_seconds: float = setting(
        env="MDP_SCANNER_KEEPALIVE_SECONDS",
        default=15.0,
        min=0.05,
        doc="After this long without messages the pub/sub link is PINGed; two silent "
        "intervals mean it is dead and it is rebuilt. Never delays a message.",
    )
    unwritten_max: int = setting(
        env="MDP_SCANNER_UNWRITTEN_MAX",
        default=10_000,
        min=0,
        doc="Writes kept for retry while Redis is unreachable (oldest dropped beyond this).",
    )
