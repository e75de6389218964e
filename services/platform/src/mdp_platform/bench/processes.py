"""CPU time and peak memory of process trees, read from ``/proc`` (Linux).

A component may be several processes (the processor's workers), so figures are summed over the
process and its live descendants. CPU is ``utime + stime`` plus ``cutime + cstime`` (children
already reaped); memory is the sum of each member's ``VmHWM`` (its own peak resident set), an
upper bound of the tree's true simultaneous peak. Unreadable processes count as zero.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcessSample",
    "ProcessTree",
    "children_named",
    "find_pids_by_name",
    "holds_port",
    "read_cpu_seconds",
    "read_hwm_kib",
]

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Fields after the ")" that closes the command name: state is index 0, ppid 1, utime 11 ...
_PPID, _UTIME, _STIME, _CUTIME, _CSTIME = 1, 11, 12, 13, 14


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    closing = text.rfind(")")
    return text[closing + 2 :].split() if closing >= 0 else None


def read_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, reaped children included) of one process; 0.0 if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = sum(int(fields[i]) for i in (_UTIME, _STIME, _CUTIME, _CSTIME))
    return ticks / _TICKS


def read_hwm_kib(pid: int) -> int:
    """Peak resident set (``VmHWM``) of one process in KiB; 0 if gone or not reported."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _parents() -> dict[int, int]:
    found: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            found[int(entry.name)] = int(fields[_PPID])
    return found


def find_pids_by_name(name: str) -> list[int]:
    """Pids whose command name (``/proc/<pid>/comm``) is ``name`` (e.g. ``redis-server``)."""
    pids: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == name:
            pids.append(int(entry.name))
    return sorted(pids)


_LISTEN = "0A"  # a socket's state in /proc/net/tcp*: TCP_LISTEN


def _listening_inodes(port: int) -> set[str] | None:
    inodes: set[str] = set()
    tables = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        tables += 1
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and fields[1].endswith(f":{port:04X}"):
                inodes.add(fields[9])
    return inodes if tables else None


def holds_port(port: int, among: list[int]) -> bool:
    """Whether one of the pids ``among`` holds a socket listening on TCP ``port``.

    A harness that picks a free port and hands it to a child learns this way that the server
    answering there is its child and not a process that took the port in between. True when
    the system offers no socket tables to tell (not Linux).
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in among if targets else ():
        try:
            fds = list((_PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in targets:
                    return True
    return False


def children_named(parent: int, name: str) -> list[int]:
    """Direct children of ``parent`` whose command name is ``name``."""
    parents = _parents()
    return [pid for pid in find_pids_by_name(name) if parents.get(pid) == parent]


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """CPU seconds and summed peak memory of a process tree at one instant."""

    cpu_seconds: float
    hwm_kib: int
    processes: int


class ProcessTree:
    """A set of root processes and, on each sample, their live descendants.

    CPU of descendants that exit between samples is kept (the highest figure seen per pid),
    so a tree's CPU never goes backwards.

    Args:
        roots: the pids at the top of the tree.
    """

    def __init__(self, roots: list[int]) -> None:
        self.roots = list(roots)
        self._cpu: dict[int, float] = {}
        self._hwm: dict[int, int] = {}

    def members(self) -> list[int]:
        """The roots and every live descendant."""
        parents = _parents()
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        seen: list[int] = []
        stack = [pid for pid in self.roots if pid in parents]
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.append(pid)
            stack.extend(children.get(pid, ()))
        return seen

    def sample(self) -> ProcessSample:
        """Read every member now."""
        members = self.members()
        for pid in members:
            self._cpu[pid] = max(self._cpu.get(pid, 0.0), read_cpu_seconds(pid))
            self._hwm[pid] = max(self._hwm.get(pid, 0), read_hwm_kib(pid))
        return ProcessSample(
            cpu_seconds=round(sum(self._cpu.values()), 3),
            hwm_kib=sum(self._hwm.values()),
            processes=len(members),
        )
