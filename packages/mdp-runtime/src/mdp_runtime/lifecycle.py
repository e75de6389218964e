"""How a service process starts, stops and reports the way it ended.

A console script does ``sys.exit(run_service(main, name="listener"))``. ``main`` receives a
stop event and returns when it is set, after draining; the first SIGTERM or SIGINT sets it.
If ``main`` has not returned after the grace period, or a second signal arrives, it is
cancelled hard. The return value is the process exit code, using the ``sysexits`` numbers so
an orchestrator can tell a bad configuration (do not restart in a loop) from a crash.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum

import structlog

from mdp_core.cancellation import RECANCEL_SECONDS

__all__ = [
    "AuthError",
    "ConfigError",
    "ExitCode",
    "ServiceExit",
    "UnavailableError",
    "run_service",
]

_log = structlog.get_logger("mdp_runtime.lifecycle")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SIGNAL_EXIT_BASE = 128  # the shell's convention: killed by signal N exits 128 + N


class ExitCode(IntEnum):
    """Process exit codes, from BSD ``sysexits.h`` where one fits."""

    OK = 0
    UNAVAILABLE = 69
    """EX_UNAVAILABLE: a required service (broker, Redis, vendor) could not be reached."""
    SOFTWARE = 70
    """EX_SOFTWARE: an unexpected error, a bug."""
    OSERR = 71
    """EX_OSERR: the system refused a listening port (already in use by another process)."""
    AUTH = 77
    """EX_NOPERM: credentials were refused (a vendor key, the broker login)."""
    CONFIG = 78
    """EX_CONFIG: the configuration is invalid; restarting will not help."""


class ServiceExit(Exception):
    """Raise from ``main`` to end the service with ``code`` and a one-line message.

    The message goes to stderr as a single line, without a traceback: these are expected
    ways for a service to refuse to run, not bugs.

    Args:
        message: what went wrong and, ideally, how to fix it.
        code: the exit code.
    """

    default_code: int = ExitCode.SOFTWARE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code


class ConfigError(ServiceExit):
    """The configuration is invalid; exits with :attr:`ExitCode.CONFIG` (78)."""

    default_code = ExitCode.CONFIG


class AuthError(ServiceExit):
    """Credentials were refused; exits with :attr:`ExitCode.AUTH` (77)."""

    default_code = ExitCode.AUTH


class UnavailableError(ServiceExit):
    """A dependency could not be reached; exits with :attr:`ExitCode.UNAVAILABLE` (69)."""

    default_code = ExitCode.UNAVAILABLE


ServiceMain = Callable[[asyncio.Event], Awaitable[int | None]]


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no detail given"


def _port_taken(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno == errno.EADDRINUSE


def _only_ports_taken(error: BaseException) -> OSError | None:
    """The "address already in use" that ended the service, when nothing else did.

    The service's own listeners (health, the WDS) bind fixed ports: EADDRINUSE then means
    another process holds one, the environment's doing and not a bug, so it ends the service
    with one line instead of a traceback. A group that holds any other error is a crash.
    """
    if isinstance(error, OSError):
        return error if _port_taken(error) else None
    if isinstance(error, BaseExceptionGroup):
        taken, rest = error.split(_port_taken)
        if taken is not None and rest is None:
            leaf: BaseException = taken
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            if isinstance(leaf, OSError):
                return leaf
    return None


def _service_exit_in(error: BaseException) -> ServiceExit | None:
    """Find a ServiceExit in ``error``, looking inside exception groups (TaskGroup)."""
    if isinstance(error, ServiceExit):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _service_exit_in(inner)
            if found is not None:
                return found
    return None


class _Supervisor:
    """Runs ``main`` under signal handling; one instance per :func:`run_service` call."""

    def __init__(self, main: ServiceMain, name: str, grace_seconds: float) -> None:
        self.main = main
        self.name = name
        self.grace_seconds = grace_seconds
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int | None] | None = None
        self.first_signal: int | None = None
        self.forced_reason: str | None = None
        self.grace_timer: asyncio.TimerHandle | None = None
        self.recancel_timer: asyncio.TimerHandle | None = None

    async def call_main(self) -> int | None:
        return await self.main(self.stop)

    def on_signal(self, signum: int) -> None:
        if self.first_signal is None:
            self.first_signal = signum
            _log.info(
                "stop_requested",
                service=self.name,
                signal=signal.Signals(signum).name,
                grace_seconds=self.grace_seconds,
            )
            self.stop.set()
            loop = asyncio.get_running_loop()
            self.grace_timer = loop.call_later(
                self.grace_seconds, self.cancel_hard, "the grace period elapsed"
            )
        else:
            self.cancel_hard(f"a second signal ({signal.Signals(signum).name}) arrived")

    def cancel_hard(self, reason: str) -> None:
        if self.task is not None and not self.task.done() and self.forced_reason is None:
            self.forced_reason = reason
            _log.warning("stopping_hard", service=self.name, reason=reason)
            self.cancel_again()

    def cancel_again(self) -> None:
        """Cancel ``main`` now and again every ``RECANCEL_SECONDS`` until it has ended.

        One cancel can be lost on Python 3.11 (a library's ``wait_for``, CPython gh-86296),
        and a hard stop must not leave the process to the orchestrator's SIGKILL.
        """
        if self.task is not None and not self.task.done():
            self.task.cancel()
            loop = asyncio.get_running_loop()
            self.recancel_timer = loop.call_later(RECANCEL_SECONDS, self.cancel_again)

    def install_handlers(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        installed = []
        for signum in _STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, self.on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread, or a platform without loop signal handlers.
                _log.warning("signal_not_handled", service=self.name, signal=signum.name)
                continue
            installed.append(signum)
        return installed

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        installed = self.install_handlers(loop)
        self.task = asyncio.create_task(self.call_main(), name=f"{self.name}-main")
        try:
            result = await self.task
        except asyncio.CancelledError:
            if self.forced_reason is None:
                raise  # cancelled from outside: not ours to translate
            assert self.first_signal is not None
            return _SIGNAL_EXIT_BASE + self.first_signal
        except BaseException as error:
            return self.exit_code_for(error)
        finally:
            for timer in (self.grace_timer, self.recancel_timer):
                if timer is not None:
                    timer.cancel()
            for signum in installed:
                loop.remove_signal_handler(signum)
        code = ExitCode.OK if result is None else int(result)
        _log.info("service_stopped", service=self.name, exit_code=code)
        return code

    def exit_code_for(self, error: BaseException) -> int:
        expected = _service_exit_in(error)
        if expected is not None:
            print(f"{self.name}: {_one_line(expected.message)}", file=sys.stderr, flush=True)
            return expected.code
        if not isinstance(error, Exception):
            raise error  # SystemExit, KeyboardInterrupt: let them through
        taken = _only_ports_taken(error)
        if taken is not None:
            detail = _one_line(taken.strerror or str(taken))
            print(f"{self.name}: cannot listen: {detail}", file=sys.stderr, flush=True)
            return ExitCode.OSERR
        _log.exception("service_crashed", service=self.name)
        return ExitCode.SOFTWARE


def run_service(main: ServiceMain, *, name: str, grace_seconds: float = 20.0) -> int:
    """Run ``main`` until it returns and give back the process exit code.

    Args:
        main: the service body; it gets the stop event and should return soon after the
            event is set. Its return value (None means 0) becomes the exit code.
        name: the service name, for logs and the one-line error messages.
        grace_seconds: how long ``main`` may take to return after the first stop signal
            before it is cancelled.

    Returns:
        ``main``'s code; 128 + the signal number when it had to be cancelled; the error's
        code for a :class:`ServiceExit` (``ConfigError`` gives 78); 71 when a port to listen
        on was taken; 70 for any other error.
    """
    if grace_seconds < 0:
        msg = f"grace_seconds must be >= 0; it was {grace_seconds}"
        raise ValueError(msg)
    try:
        return asyncio.run(_Supervisor(main, name, grace_seconds).run())
    except KeyboardInterrupt:
        # Ctrl-C before the handlers were installed, or after they were removed.
        return _SIGNAL_EXIT_BASE + signal.SIGINT
