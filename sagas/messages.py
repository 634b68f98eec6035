"""What the workflow and its activities hand each other: one dataclass in, one out.

These travel through Temporal's JSON data converter and are recorded in workflow
histories, so change them only by adding fields with defaults (replay tests over
``tests/histories/`` catch the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPLETED = "completed"
UNKNOWN = "unknown"


@dataclass
class RunPolicy:
    """Per-run knobs, fixed when the run starts (read from settings by the starter)."""

    approval_threshold: float = 0.7
    approval_timeout_s: float = 3600.0
    history_limit: int = 5000
    # The tenant's four-eyes rule (domain/risk_policy.py): a step of risk above
    # ``approvers_above_risk`` waits for ``approvers`` distinct grants. The defaults are
    # one approver, as runs started before the rule had.
    approvers: int = 1
    approvers_above_risk: float = 1.0
    # The tenant's tier when the goal was accepted (domain/tiers.py), set by the bridge.
    # The defaults (no tier, no step limit, the LLM planner allowed) are what runs
    # started before tiers had.
    tier: str = ""
    max_plan_steps: int = 0  # 0: no limit
    llm_planner: bool = True


@dataclass(kw_only=True)
class WireStep:
    """:class:`domain.events.PlanStep` with lists, as Temporal's converter likes them."""

    step_id: str
    tool: str
    arguments_json: str
    depends_on: list[str] = field(default_factory=list)
    risk: float = 0.0
    compensation: str | None = None
    timeout_s: float = 30.0
    max_attempts: int = 3


@dataclass(kw_only=True)
class CompletedStep:
    """An entry of the compensation stack, pushed when the step's outcome settled.

    ``outcome`` is ``completed``, or ``unknown`` for a step whose tool was started and then
    cancelled or abandoned (timed out, worker lost) before it returned: it may have had
    its effect, so it is undone too; its ``result_json`` is ``null``.
    """

    step_id: str
    tool: str
    arguments_json: str
    result_json: str
    outcome: str = COMPLETED


@dataclass(kw_only=True)
class ApprovalDecision:
    """A human's (or the timeout's) answer to an approval request: a signal payload."""

    approval_id: str
    step_id: str
    granted: bool
    approver: str
    reason: str | None = None
    timed_out: bool = False


@dataclass
class CancelRequest:
    """A request to stop the run and roll it back: a signal payload."""

    reason: str
    requested_by: str


@dataclass(kw_only=True)
class CarriedState:
    """What a run carries across continue-as-new."""

    plan_id: str
    steps: list[WireStep]
    plan_event_id: str = ""
    # The compensation stack. Steps of unknown outcome only join it as the run ends (on a
    # failure or cancel request), so it holds completed steps whenever it is carried on.
    completed: list[CompletedStep] = field(default_factory=list)
    decisions: list[ApprovalDecision] = field(default_factory=list)
    started_at_ms: int = 0
    generation: int = 0


@dataclass(kw_only=True)
class RunInput:
    """Starts :class:`sagas.workflow.AgentWorkflow`; the workflow id is ``run_id``."""

    run_id: str
    tenant_id: str
    goal: str
    goal_event_id: str
    context: dict[str, str] = field(default_factory=dict)
    policy: RunPolicy = field(default_factory=RunPolicy)
    carried: CarriedState | None = None
    requested_by: str = ""  # the goal_received envelope's actor: never its approver


@dataclass(kw_only=True)
class RunResult:
    """How a run ended: completed, failed (incl. refused) or cancelled."""

    run_id: str
    status: str
    reason: str = ""
    failed_step_id: str | None = None
    compensated_step_ids: list[str] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)


@dataclass
class RunRef:
    """The run an activity works for: ids and the event its events are caused by."""

    run_id: str
    tenant_id: str
    causation_id: str | None = None


@dataclass
class AssessInput:
    run: RunRef
    goal: str


@dataclass(kw_only=True)
class AssessOutput:
    sanitized_goal: str
    risk_score: float
    reasons: list[str]
    allowed: bool
    event_id: str


@dataclass
class PlanInput:
    run: RunRef
    goal: str
    context: dict[str, str] = field(default_factory=dict)
    # The run's tier's entitlements (RunPolicy): the most steps, and the LLM planner.
    tier: str = ""
    max_steps: int = 0  # 0: no limit
    llm_planner: bool = True


@dataclass(kw_only=True)
class PlanOutput:
    """A validated plan, or ``error`` (``<reason>: <detail>``) when none could be made."""

    plan_id: str
    steps: list[WireStep]
    planner: str
    event_id: str
    error: str | None = None


@dataclass
class StepInput:
    run: RunRef
    step: WireStep
    inputs: dict[str, str] = field(default_factory=dict)  # dependency step id -> result JSON


@dataclass(kw_only=True)
class StepOutput:
    step_id: str
    result_json: str
    attempt: int
    arguments_json: str = "{}"  # with references resolved: what compensation undoes


@dataclass(kw_only=True)
class StepFailureInput:
    """A failure the activity could not report itself (timeout, lost worker)."""

    run: RunRef
    step: WireStep
    error_type: str
    message: str


@dataclass(kw_only=True)
class CompensateInput:
    run: RunRef
    step: CompletedStep
    compensation: str
    max_attempts: int = 5


@dataclass
class CompensateOutput:
    step_id: str
    compensated: bool
    detail: str = ""


@dataclass(kw_only=True)
class ApprovalInput:
    run: RunRef
    approval_id: str
    step: WireStep
    reasons: list[str]
    expires_at_ms: int
    # What the approver is shown (approval_requested v2); defaults for older histories.
    goal: str = ""
    requested_by: str = ""
    inputs: dict[str, str] = field(default_factory=dict)  # dependency step id -> result JSON
    required_approvals: int = 1


@dataclass
class ApprovalWithdrawnInput:
    """A pending approval the run no longer needs: it failed or was cancelled."""

    run: RunRef
    approval_id: str
    step_id: str
    reason: str


@dataclass
class ApprovalTimeoutInput:
    run: RunRef
    approval_id: str
    step_id: str


@dataclass(kw_only=True)
class FinishInput:
    """The run's last event: ``status`` is completed, failed or cancelled."""

    run: RunRef
    status: str
    duration_ms: int
    reason: str = ""
    failed_step_id: str | None = None
    compensated_step_ids: list[str] = field(default_factory=list)
    step_count: int = 0
    result_json: str = "{}"
    cancelled_by: str = ""


@dataclass
class Emitted:
    """The id of the event an activity appended."""

    event_id: str
