"""Storage layer of the mdp platform.

The Redis key catalogue, the internal market data cache (MDC) and the widget data cache (WDC).
"""

from importlib.metadata import version as _version

__version__ = _version("mdp-cache")

__all__ = ["__version__"]
