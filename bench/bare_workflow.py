"""Temporal's bare limit for a saga: three no-op activities in a row.

Its own module with nothing but temporalio imported: the workflow sandbox re-imports
the workflow's module for every run, and a heavy one would measure its imports.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bare_noop")
async def bare_noop(step: int) -> int:
    """Nothing: the cost of an activity call itself."""
    return step


@workflow.defn(name="BareWorkflow", sandboxed=True)
class BareWorkflow:
    """Three no-op activities in sequence, like a three-step run without OmniHub."""

    @workflow.run
    async def run(self) -> int:
        total = 0
        for step in range(3):
            total += await workflow.execute_activity(
                bare_noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return total
