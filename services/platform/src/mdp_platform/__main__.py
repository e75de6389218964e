"""The ``mdp`` command: ``mdp demo``, ``mdp bench``, ``mdp chaos``, ``mdp docs``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["build_parser", "main"]

_INTERRUPTED = 130  # the shell's status for a command stopped by SIGINT (128 + 2)


def _docs(args: argparse.Namespace) -> int:
    from mdp_platform.reference import write_all  # noqa: PLC0415 - imports every service

    for path in write_all(Path(args.out)):
        print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mdp_platform.demo import run_demo_command  # noqa: PLC0415 - heavy; only this command

    return run_demo_command(args)


def _bench(args: argparse.Namespace) -> int:
    from mdp_platform.bench.run import run_bench_command  # noqa: PLC0415 - heavy; only this command

    return run_bench_command(args)


def _chaos(args: argparse.Namespace) -> int:
    from mdp_platform.chaos import run_chaos_command  # noqa: PLC0415 - heavy; only this command

    return run_chaos_command(args)


def _release() -> str:
    try:
        return version("mdp-platform")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``mdp``."""
    parser = argparse.ArgumentParser(
        prog="mdp",
        description="The mdp market data platform: the demo, the benchmark, the chaos suite, the "
        "reference docs.",
    )
    parser.add_argument("--version", action="version", version=f"mdp {_release()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the whole platform on this machine against a simulated market",
        description="Run the simulators, listeners, processors, scanner, WDS and SCP on "
        "127.0.0.1 and print the dashboard URL and a login (user admin with a random password "
        "made for this run, valid until the demo stops; MDP_DEMO_ADMIN_PASSWORD sets your "
        "own). With no options it needs no servers and no API keys.",
    )
    from mdp_platform.options import add_demo_options  # noqa: PLC0415 - keeps --help fast

    add_demo_options(demo)
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser(
        "bench",
        help="measure throughput and freshness end to end on the real RabbitMQ and Redis",
    )
    from mdp_platform.options import add_bench_options  # noqa: PLC0415 - keeps --help fast

    add_bench_options(bench)
    bench.set_defaults(handler=_bench)

    chaos = commands.add_parser(
        "chaos",
        help="break the pipeline on purpose (private RabbitMQ and Redis) and check it heals",
    )
    from mdp_platform.chaos import add_chaos_options  # noqa: PLC0415 - keeps --help fast

    add_chaos_options(chaos)
    chaos.set_defaults(handler=_chaos)

    docs = commands.add_parser("docs", help="regenerate the reference documents from the code")
    docs.add_argument("--out", default="docs/reference", help="output folder (%(default)s)")
    docs.set_defaults(handler=_docs)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mdp`` console script."""
    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
    except KeyboardInterrupt:
        # Ctrl-C where no handler of the command's own runs yet (while the options and the
        # command import) or at all (a bench run, whose task asyncio.run has cancelled and
        # unwound by now): no traceback, and die of SIGINT as the shell expects of an
        # interrupted command (a shell loop around it stops too), as Python itself does.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = _INTERRUPTED  # where SIGINT cannot end the process
    sys.exit(code)


if __name__ == "__main__":
    main()
