"""The command line every service shares: ``--help`` and ``--version``, nothing else.

Services are configured through the environment only (one place reads it: the settings
classes), so their command line has nothing to configure. It still has to answer ``--help``
without starting anything: an operator who types ``mdp-processor --help`` wants the list of
variables, not a processor attached to the local broker.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from mdp_core.settings import describe

__all__ = ["parse_service_arguments", "plain_text", "settings_help"]

# A Sphinx cross-reference such as :class:`~mdp_listener.listener.MassiveListener`.
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def plain_text(text: str) -> str:
    """``text`` without reStructuredText markup, for a terminal.

    Roles become their target (``:class:`~a.b.C``` reads ``C``, ``:mod:`a.b``` reads ``a.b``)
    and literal quotes (double backquotes) go.
    """
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return text.replace("``", "")


def settings_help(settings: Sequence[type]) -> str:
    """The environment variables of ``settings`` classes as indented help text."""
    lines = ["environment variables:"]
    seen: set[str] = set()
    for cls in settings:
        for doc in describe(cls):
            if doc.env in seen:
                continue
            seen.add(doc.env)
            if doc.default is None:
                default = "required"
            else:
                default = f"default {doc.default}" if doc.default else "default empty"
            lines.append(f"  {doc.env}  ({doc.type}; {default})")
            lines.extend(
                textwrap.wrap(
                    plain_text(doc.doc), width=96, initial_indent=" " * 6, subsequent_indent=" " * 6
                )
            )
    return "\n".join(lines)


def parse_service_arguments(
    prog: str,
    *,
    doc: str | None,
    settings: Sequence[type],
    argv: Sequence[str] | None = None,
) -> None:
    """Answer ``--help``/``--version`` (and exit), refuse anything else (exit 2), or return.

    Args:
        prog: The console script's name, which is also its distribution's (``--version``).
        doc: The service module's docstring; its first paragraph describes the service.
        settings: The settings classes the service loads, listed under the help.
        argv: The arguments after the program name (``None``: ``sys.argv[1:]``).
    """
    description = plain_text((doc or prog).strip().split("\n\n", 1)[0])
    try:
        release = version(prog)
    except PackageNotFoundError:
        release = "unknown"
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=settings_help(settings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{prog} {release}")
    parser.parse_args(argv)
