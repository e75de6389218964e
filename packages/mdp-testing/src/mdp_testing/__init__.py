"""Test kit for mdp.

Clocks, stub builders, in-memory fakes, Hypothesis strategies and the analyzer conformance suite,
published so that plugin authors test their analyzers the way the platform tests its own.
"""

from importlib.metadata import version as _version

__version__ = _version("mdp-testing")

__all__ = ["__version__"]
