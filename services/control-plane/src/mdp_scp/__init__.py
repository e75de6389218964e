"""Service control plane (SCP): login, dashboard, management API.

Run it in-process (the demo does) with::

    plane = ControlPlane(settings, redis=mdc_redis)   # settings: ScpSettings
    password = plane.create_first_admin()             # print once
    await plane.start()
    ...
    await plane.stop()
"""

from importlib.metadata import version as _version

from mdp_scp.app import PLANE_KEY, ControlPlane, create_app
from mdp_scp.heartbeats import ComponentHealth, HeartbeatReader, parse_heartbeat
from mdp_scp.listener_control import ListenerControl
from mdp_scp.passwords import hash_password, verify_password
from mdp_scp.settings import ScpSettings
from mdp_scp.users import User, UserStore

__version__ = _version("mdp-scp")

__all__ = [
    "PLANE_KEY",
    "ComponentHealth",
    "ControlPlane",
    "HeartbeatReader",
    "ListenerControl",
    "ScpSettings",
    "User",
    "UserStore",
    "__version__",
    "create_app",
    "hash_password",
    "parse_heartbeat",
    "verify_password",
]
