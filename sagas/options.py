"""The options of every activity call the workflow makes, named once.

Timeouts and retry policies decide how a run survives a slow tool, a lost worker or a
log that is down; they are part of the workflow's behaviour, so they live here and
not at each call.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from sagas import messages as m

# A lost worker is noticed this long after its last heartbeat and the step retried on
# another at once (issue 16: resume within 15 s). Activities heartbeat every 2 s
# (sagas/activity_base.py), so a busy but live worker has three chances per timeout.
HEARTBEAT_TIMEOUT = timedelta(seconds=6)
# Appending to the log must eventually succeed: a run cannot progress without its log.
EMIT_TIMEOUT = timedelta(seconds=30)
EMIT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=0)
PLAN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)
COMPENSATION_ATTEMPTS = 5


class ActivityOptions(TypedDict, total=False):
    """The options of one kind of activity call, named once."""

    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy
    cancellation_type: ActivityCancellationType


# Appending an event: retried until the log takes it.
EMIT = ActivityOptions(start_to_close_timeout=EMIT_TIMEOUT, retry_policy=EMIT_RETRY)
# Asking the cache and the planner: a model call may be slow; a few tries, then fail.
PLAN = ActivityOptions(start_to_close_timeout=timedelta(minutes=2), retry_policy=PLAN_RETRY)
# The activity gives up by itself after COMPENSATION_ATTEMPTS tool failures; past that
# only the log can be down, and it must come back.
COMPENSATE = ActivityOptions(
    start_to_close_timeout=timedelta(minutes=2),
    heartbeat_timeout=HEARTBEAT_TIMEOUT,
    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=0),
)


def step_options(step: m.WireStep) -> ActivityOptions:
    """A step's own timeout and attempts; a cancel waits for the tool to stop."""
    return ActivityOptions(
        start_to_close_timeout=timedelta(seconds=step.timeout_s),
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=RetryPolicy(
            maximum_interval=timedelta(seconds=30), maximum_attempts=step.max_attempts
        ),
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )
