"""Storage layer of the mdp platform.

The Redis key catalogue (:mod:`mdp_cache.keys`), the state operations analyzers emit
(:mod:`mdp_cache.ops`) and their Redis backend (:mod:`mdp_cache.state`), the reference data
cache of MDC (:mod:`mdp_cache.reference`) and the typed WDC writers (:mod:`mdp_cache.widgets`,
whose version rule is the pure :mod:`mdp_cache.versions`).
Importing the package stays cheap: the Redis-backed modules are imported from their own modules.
The pure ones (``keys``, ``ops``, ``records``, ``lattice``, ``volume_profile``, ``versions``)
import no Redis client, so the analyzers that use them stay pure (a test checks it).
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
