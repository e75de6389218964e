"""Storage layer of the mdp platform.

The Redis key catalogue (:mod:`mdp_cache.keys`), the state operations analyzers emit
(:mod:`mdp_cache.ops`) and their Redis backend (:mod:`mdp_cache.state`), the reference data
cache of MDC (:mod:`mdp_cache.reference`) and the typed WDC writers (:mod:`mdp_cache.widgets`).
Importing the package stays cheap: the Redis-backed modules are imported from their own modules.
"""

from importlib.metadata import version as _version

from mdp_cache.ops import (
    PutNewer,
    RankedMember,
    SetValue,
    StateBackend,
    StateOp,
    TopRead,
)
from mdp_cache.records import DailyBar, ReferenceData

__version__ = _version("mdp-cache")

__all__ = [
    "DailyBar",
    "PutNewer",
    "RankedMember",
    "ReferenceData",
    "SetValue",
    "StateBackend",
    "StateOp",
    "TopRead",
    "__version__",
]
