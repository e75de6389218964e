"""An offline market.

Massive- and Finlight-faithful simulators on loopback, with a seeded synthetic market and replay.
"""

from importlib.metadata import version as _version

__version__ = _version("mdp-sim")

__all__ = ["__version__"]
