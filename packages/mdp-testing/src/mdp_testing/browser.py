"""Headless Chromium for browser tests: Debian's build, driven by Playwright, never downloaded.

Without Chromium the tests skip with the reason, except under ``CI=true``, where a missing
browser is a failure (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Final

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "require_browser"]

#: Debian's Chromium (``apt-get install chromium``); ``MDP_TEST_CHROMIUM`` points elsewhere.
CHROMIUM: Final = Path(os.environ.get("MDP_TEST_CHROMIUM", "/usr/bin/chromium"))
#: Flags for a sandbox without network or GPU: no background calls home, no updates.
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_browser() -> None:
    """Skip (or, in CI, fail) the calling test when Chromium or Playwright is missing."""
    reason = ""
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "the playwright package is not installed"
    if reason:
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: the browser test must run)", pytrace=False)
        pytest.skip(reason)
