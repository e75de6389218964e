"""Pure, pluggable market data analyzers for the mdp platform.

Leaderboards, top trades, daily range, news.
"""

from importlib.metadata import version as _version

__version__ = _version("mdp-analyzers")

__all__ = ["__version__"]
