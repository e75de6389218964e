"""Pure, pluggable market data analyzers for the mdp platform.

Leaderboards, top trades, the latest-event router, daily range and news. The contract is in
:mod:`mdp_analyzers.typing`; analyzers are found by name through :mod:`mdp_analyzers.registry`;
:mod:`mdp_analyzers.replay` runs any of them offline.
"""

from importlib.metadata import version as _version

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.registry import UnknownAnalyzer, available, create_analyzer, load_analyzer
from mdp_analyzers.replay import OfflineResult, run_offline
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_analyzers.typing import (
    Analyzer,
    Composer,
    FeedMessage,
    NeedsReference,
    Output,
    Rehydratable,
    WidgetWrite,
)

__version__ = _version("mdp-analyzers")

__all__ = [
    "Analyzer",
    "Composer",
    "FeedMessage",
    "LeaderboardAnalyzer",
    "MassiveDataAnalyzer",
    "MemoryState",
    "NeedsReference",
    "OfflineResult",
    "Output",
    "Rehydratable",
    "TopStocksAnalyzer",
    "TopTradesAnalyzer",
    "UnknownAnalyzer",
    "WidgetWrite",
    "__version__",
    "available",
    "create_analyzer",
    "load_analyzer",
    "run_offline",
]
