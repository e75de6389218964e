"""Service runtime for mdp components: lifecycle, health and metrics endpoints, heartbeats."""

from importlib.metadata import version as _version

__version__ = _version("mdp-runtime")

__all__ = ["__version__"]
