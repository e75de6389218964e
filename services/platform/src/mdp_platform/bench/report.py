"""Figures of ``mdp bench``: counters from the components, per-phase results, the printed table.

Components report nested JSON on ``/status``; :func:`flatten` turns it into ``a.b.c -> number``
so a phase's figures are plain differences of two snapshots, and :func:`pick` finds a headline
counter among the names the components use. Everything here is pure (no I/O) and unit tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mdp_platform.bench.stats import LagSummary

__all__ = [
    "STAGES",
    "PhaseResult",
    "delta",
    "flatten",
    "pick",
    "progress_line",
    "render_table",
    "sum_matching",
]

STAGES: Final = ("simulator", "listener", "processor", "scanner", "wds", "clients")
"""The pipeline in order; each phase reports events/s through every one of them."""


def flatten(value: object, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested JSON as ``path -> value`` (booleans as 0/1, lists skipped)."""
    out: dict[str, float] = {}
    if isinstance(value, bool | int | float):
        out[prefix] = float(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """``after - before`` per name (names missing before count from zero)."""
    return {name: value - before.get(name, 0.0) for name, value in after.items()}


def pick(figures: Mapping[str, float], *names: str) -> float | None:
    """The first of ``names`` present in ``figures`` (None when none is)."""
    for name in names:
        if name in figures:
            return figures[name]
    return None


def sum_matching(figures: Mapping[str, float], prefix: str) -> float:
    """The sum of every figure under ``prefix`` (``queue.dropped_events`` sums its children)."""
    dotted = prefix + "."
    return sum(v for k, v in figures.items() if k == prefix or k.startswith(dotted))


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """What one phase measured.

    Attributes:
        name: ``fixed`` (offered rate), ``sustained`` (the highest fixed rate the pipeline kept
            up with) or ``saturation`` (a bounded backlog ahead of the processors, or as fast
            as the listener reads).
        seconds: measured wall time.
        offered_rate: events/s asked of the simulator (None: as fast as possible).
        rates: events (or messages) per second through each stage; None = stage missing.
        end_to_end_rate: events/s that reached Redis (processor events flushed).
        lag_event_to_redis: from event emission to the Redis publish (bench subscriber).
        lag_event_to_client: from event emission to a client receiving the quote update.
        lag_board_to_client: from a board's composition to a client receiving it.
        processor_lag: the processor's own receipt-to-write percentiles, if it reports them.
        drops: dropped events and failed operations by component and reason in the phase.
        cpu_per_100k: CPU seconds per 100,000 offered events, by component.
        longest_board_gap_ms: the longest time in the phase any client went without an update
            of any board it follows (boards are composed about once a second: a freeze shows).
        load_1min: the machine's 1-minute load average at the phase's start and end.
        client_p99_by_second_ms: event -> client p99 of each second of the phase (a backlog
            at its start shows as high first seconds; None: no update arrived that second).
        processor_flushes: the processors' flushes in the phase and how many of them were
            paced for saturation (``saturated_flushes``); None when they do not report them.
        tape_share: the share of the phase's offered events the simulator sent from a tape
            prepared before it rather than generating them live (None: not reported).
    """

    name: str
    seconds: float
    offered_rate: float | None
    rates: dict[str, float | None]
    end_to_end_rate: float | None
    lag_event_to_redis: LagSummary
    lag_event_to_client: LagSummary
    lag_board_to_client: LagSummary
    processor_lag: dict[str, float] = field(default_factory=dict)
    drops: dict[str, float] = field(default_factory=dict)
    cpu_per_100k: dict[str, float] = field(default_factory=dict)
    longest_board_gap_ms: float | None = None
    load_1min: tuple[float, float] | None = None
    client_p99_by_second_ms: tuple[float | None, ...] = ()
    processor_flushes: tuple[float, float] | None = None
    tape_share: float | None = None


def _rate(value: float | None) -> str:
    return "missing" if value is None else f"{value:,.0f}"


def _lag(summary: LagSummary) -> str:
    if summary.count == 0:
        return "-"
    return (
        f"{summary.p50_ms:,.0f}/{summary.p90_ms:,.0f}/{summary.p99_ms:,.0f}/{summary.max_ms:,.0f}"
    )


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _load(value: tuple[float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.2f}/{value[1]:.2f}"


def _flushes(value: tuple[float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:,.0f} ({value[1]:,.0f})"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _own_lag(figures: Mapping[str, float]) -> str:
    p50 = figures.get("lag_receipt_p50_seconds")
    p99 = figures.get("lag_receipt_p99_seconds")
    if p50 is None or p99 is None:
        return "-"
    return f"{p50 * 1000:,.0f}/{p99 * 1000:,.0f}"


def render_table(
    phases: Sequence[PhaseResult],
    memory_mib: Mapping[str, float],
    correctness: Iterable[tuple[str, bool, str]],
) -> str:
    """The short end-of-run table: one column per phase, then memory and the check."""
    lines: list[str] = []
    width = 32
    head = "".join(
        f"{p.name + (f' @{p.offered_rate:,.0f}/s' if p.offered_rate else ''):>24}" for p in phases
    )
    lines.append(f"{'':<{width}}{head}")

    def row(label: str, values: Iterable[str]) -> None:
        lines.append(f"{label:<{width}}" + "".join(f"{v:>24}" for v in values))

    for stage in STAGES:
        unit = "ev/s" if stage in {"simulator", "listener", "processor"} else "msg/s"
        row(f"{stage} {unit}", (_rate(p.rates.get(stage)) for p in phases))
    row("end to end (Redis) ev/s", (_rate(p.end_to_end_rate) for p in phases))
    row("event->Redis ms p50/90/99/max", (_lag(p.lag_event_to_redis) for p in phases))
    row("event->client ms p50/90/99/max", (_lag(p.lag_event_to_client) for p in phases))
    row("board->client ms p50/90/99/max", (_lag(p.lag_board_to_client) for p in phases))
    row("processor receipt->write p50/99", (_own_lag(p.processor_lag) for p in phases))
    row("processor flushes (saturated)", (_flushes(p.processor_flushes) for p in phases))
    row("longest board gap at a client ms", (_gap(p.longest_board_gap_ms) for p in phases))
    row("load average 1 min start/end", (_load(p.load_1min) for p in phases))
    row("simulator events from a tape", (_share(p.tape_share) for p in phases))
    reasons = sorted({name for p in phases for name in p.drops})
    for reason in reasons:
        row(f"lost {reason}", (f"{p.drops.get(reason, 0):,.0f}" for p in phases))
    components = sorted({name for p in phases for name in p.cpu_per_100k})
    for component in components:
        row(
            f"CPU s/100k ev {component}",
            (f"{p.cpu_per_100k.get(component, 0.0):.2f}" for p in phases),
        )
    lines.extend(
        f"event->client p99 ms by second ({p.name}): "
        + " ".join("-" if v is None else f"{v:,.0f}" for v in p.client_p99_by_second_ms)
        for p in phases
        if p.client_p99_by_second_ms
    )
    if memory_mib:
        lines.append(
            "peak memory (VmHWM, MiB): "
            + ", ".join(f"{name} {value:,.0f}" for name, value in sorted(memory_mib.items()))
        )
    for board, ok, detail in correctness:
        lines.append(f"check {board:<14} {'PASS' if ok else 'FAIL'}  {detail}")
    return "\n".join(lines)


def progress_line(phase: str, elapsed: float, total: float, rates: Mapping[str, Any]) -> str:
    """One progress line: the phase, its clock and the latest per-stage rates."""
    parts = [f"[{phase} {elapsed:4.0f}/{total:.0f}s]"]
    for stage in STAGES:
        value = rates.get(stage)
        parts.append(f"{stage} {'-' if value is None else f'{value:,.0f}'}")
    return "  ".join(parts)
