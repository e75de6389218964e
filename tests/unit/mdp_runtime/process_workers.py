"""Tiny worker targets for test_process.py, importable by spawned children."""

import asyncio
import sys

from opentelemetry import trace

from mdp_runtime.process import WorkerContext


async def reporting_worker(index: int, ctx: WorkerContext) -> None:
    """Report counters and the trace id it runs under, then wait to be stopped."""
    trace_id = trace.get_current_span().get_span_context().trace_id
    ctx.report(processed=10 + index, errors=0, trace_id=f"{trace_id:032x}")
    ctx.report(restarts_seen=ctx.restarts)
    await ctx.stopping.wait()
    ctx.report(drained=True)


async def exit_first_time_worker(index: int, ctx: WorkerContext) -> None:
    """Exit with code 3 on the first run of each slot; behave on restarts."""
    if ctx.restarts == 0:
        sys.exit(3)
    ctx.report(processed=1, restarts_seen=ctx.restarts)
    await ctx.stopping.wait()


async def failing_worker(index: int, ctx: WorkerContext) -> None:
    """Fail at once, every time."""
    raise RuntimeError(f"worker {index} cannot start")


async def stubborn_worker(index: int, ctx: WorkerContext) -> None:
    """Ignore the stop request entirely (the parent must kill it)."""
    ctx.report(ready=True)
    await asyncio.Event().wait()


async def counting_worker(index: int, ctx: WorkerContext) -> None:
    """Count 5 and report a gauge; the first run of each slot then exits with code 3."""
    ctx.report(processed=5, depth=7 + ctx.restarts, ready=True)
    if ctx.restarts == 0:
        sys.exit(3)  # the final report is still flushed on the way out
    await ctx.stopping.wait()
