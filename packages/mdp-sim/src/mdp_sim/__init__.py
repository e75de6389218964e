"""An offline market.

Massive- and Finlight-faithful simulators on loopback, with a seeded synthetic market and replay.
Start everything with ``async with SimServers(SimConfig(...)) as sim:`` or ``mdp-sim serve``.
"""

from importlib.metadata import version as _version

from mdp_sim.faults import Faults, FinlightFaults, MalformedKind, MassiveFaults, RestFaults
from mdp_sim.finlight_ws import FinlightRestServer, FinlightWsConfig, FinlightWsServer
from mdp_sim.market import Market, MarketUpdate
from mdp_sim.massive_rest import MassiveRestConfig, MassiveRestServer
from mdp_sim.massive_ws import MassiveWsConfig, MassiveWsServer, StateWatch
from mdp_sim.record import RecordingPathError, check_recording_path, record
from mdp_sim.replay import RecordedFrame, ReplayBroadcaster
from mdp_sim.scenario import Role, ScenarioConfig, SymbolProfile
from mdp_sim.server import MarketBroadcaster, SimConfig, SimServers, new_api_key
from mdp_sim.simclock import SimClock

__version__ = _version("mdp-sim")

__all__ = [
    "Faults",
    "FinlightFaults",
    "FinlightRestServer",
    "FinlightWsConfig",
    "FinlightWsServer",
    "MalformedKind",
    "Market",
    "MarketBroadcaster",
    "MarketUpdate",
    "MassiveFaults",
    "MassiveRestConfig",
    "MassiveRestServer",
    "MassiveWsConfig",
    "MassiveWsServer",
    "RecordedFrame",
    "RecordingPathError",
    "ReplayBroadcaster",
    "RestFaults",
    "Role",
    "ScenarioConfig",
    "SimClock",
    "SimConfig",
    "SimServers",
    "StateWatch",
    "SymbolProfile",
    "__version__",
    "check_recording_path",
    "new_api_key",
    "record",
]
