"""Configuration of the market data scanner (MDS), read once from ``MDP_SCANNER_*``."""

from __future__ import annotations

from mdp_core.backoff import BackoffPolicy
from mdp_core.settings import CommonSettings, Renamed, setting, settings_class

__all__ = ["ScannerSettings"]


@settings_class
class ScannerSettings(CommonSettings):
    """What the MDS needs beyond the common settings (it reads and writes WDC only)."""

    analyzers: tuple[str, ...] = setting(
        env="MDP_SCANNER_ANALYZERS",
        default=("daily_range", "unusual_volume", "news_movers", "halt_alerts"),
        doc="Analyzers to run, by entry point name (group mdp.analyzers).",
    )
    rvol_thresholds: tuple[float, ...] = setting(
        env="MDP_SCANNER_RVOL_THRESHOLDS",
        default=(2.0, 3.0, 5.0, 10.0),
        doc="Time-of-day relative volume levels that raise an unusual-volume alert "
        "(`alerts:volume`), once each per symbol and trading day; comma-separated, each > 0.",
    )
    rvol_min_volume: int = setting(
        env="MDP_SCANNER_RVOL_MIN_VOLUME",
        default=10_000,
        min=0,
        doc="Shares a symbol must have traded today before its RVol can alert (3x of a few "
        "hundred shares at 04:05 is noise).",
    )
    news_window_seconds: float = setting(
        env="MDP_SCANNER_NEWS_WINDOW_SECONDS",
        default=1800.0,
        min=6.0,
        renamed_from=[Renamed("MDP_SCANNER_NEWS_WINDOW_MINUTES", unit="minutes", scale=60.0)],
        doc="How long after an article a move of the symbol is credited to it "
        "(news-driven movers, `alerts:news`).",
    )
    news_move_pct: float = setting(
        env="MDP_SCANNER_NEWS_MOVE_PCT",
        default=5.0,
        min=0.01,
        doc="Price move from the pre-news price, in percent (up or down), that makes a "
        "news-driven mover.",
    )
    news_rvol: float = setting(
        env="MDP_SCANNER_NEWS_RVOL",
        default=3.0,
        min=0.01,
        doc="Time-of-day RVol that makes a news-driven mover when it was below it at the news.",
    )
    halt_resume_wait_seconds: float = setting(
        env="MDP_SCANNER_HALT_RESUME_WAIT_SECONDS",
        default=60.0,
        min=0.0,
        doc="How long a LULD resume alert waits for the reopening print (its price) before it "
        "is raised without one (`alerts:halts`).",
    )

    def analyzer_options(self) -> dict[str, object]:
        """The options handed to every analyzer (each takes the ones it declares)."""
        return {
            "calendar": self.calendar,
            "rvol_thresholds": self.rvol_thresholds,
            "rvol_min_volume": self.rvol_min_volume,
            "news_window_seconds": self.news_window_seconds,
            "news_move_pct": self.news_move_pct,
            "news_rvol": self.news_rvol,
            "resume_wait_seconds": self.halt_resume_wait_seconds,
        }

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
        doc="Cap of the exponential reconnect delay (jittered by MDP_RETRY_JITTER).",
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

    @property
    def reconnect_backoff(self) -> BackoffPolicy:
        """Reconnect delays after losing Redis (``MDP_SCANNER_BACKOFF_*``, ``MDP_RETRY_JITTER``)."""
        return BackoffPolicy.from_settings(
            self.backoff_initial_seconds, self.backoff_max_seconds, self.retry_jitter
        )
