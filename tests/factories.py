"""One realistic instance of every event type, for round-trip and contract tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from domain import ids
from domain.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ApproverNotified,
    AuditCheckpointTaken,
    AuditFactObserved,
    AuditRecorded,
    DeviceRegistered,
    DeviceRevoked,
    Event,
    GoalAssessed,
    GoalReceived,
    KillSwitchToggled,
    MembershipChanged,
    NotificationChannelSet,
    PlanCacheInvalidated,
    PlanGenerated,
    PlanStep,
    PlanTemplateShared,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    StepCompensated,
    StepCompensationFailed,
    StepCompleted,
    StepFailed,
    StepStarted,
    SubjectErased,
    SubscriptionChanged,
    WalletLinked,
    WalletUnlinked,
)

AT = datetime(2026, 11, 22, 9, 30, 15, 123000, tzinfo=UTC)


def env(cls: type[Event], run_id: str = "run-1", *disc: str | int, tenant: str = "acme"):  # type: ignore[no-untyped-def]
    return ids.envelope(
        cls,
        run_id=run_id,
        tenant_id=tenant,
        actor="saga",
        correlation_id=run_id,
        causation_id="cause-1",
        discriminator=disc,
        occurred_at=AT,
    )


def goal_received(
    run_id: str | None = None, tenant: str = "acme", goal: str = "Book flight to Paris"
) -> GoalReceived:
    run_id = run_id or str(uuid.uuid4())
    return GoalReceived(
        envelope=env(GoalReceived, run_id, tenant=tenant),
        goal=goal,
        context={"channel": "web"},
        idempotency_key=None,
    )


def all_events(run_id: str = "run-1") -> list[Event]:
    step = PlanStep(
        "s1", "http_call", '{"url": "https://example.com"}', ("s0",), 0.4, "http_undo", 10.0, 2
    )
    return [
        goal_received(run_id),
        GoalAssessed(env(GoalAssessed, run_id), "Book flight to Paris", 0.1, ("ok",), True),
        PlanGenerated(
            env(PlanGenerated, run_id),
            "plan-1",
            (step,),
            "gpt-test",
            True,
            0.93,
            "Book flight to {DESTINATION}",
            {"DESTINATION": "Paris"},
        ),
        StepStarted(env(StepStarted, run_id, "s1", 1), "s1", "http_call", 1),
        StepCompleted(env(StepCompleted, run_id, "s1"), "s1", "http_call", 1, '{"ok": true}', 42),
        StepFailed(
            env(StepFailed, run_id, "s2", 1), "s2", "db_write", 1, "Timeout", "slow", True, False
        ),
        StepCompensated(env(StepCompensated, run_id, "s1"), "s1", "http_call", "http_undo", "{}"),
        StepCompensationFailed(
            env(StepCompensationFailed, run_id, "s3"), "s3", "db_write", "db_delete", "gone"
        ),
        ApprovalRequested(
            env(ApprovalRequested, run_id, "a1"),
            "a1",
            "s4",
            "wire_money",
            0.9,
            ("amount over limit",),
            AT + timedelta(hours=1),
        ),
        ApprovalGranted(env(ApprovalGranted, run_id, "a1"), "a1", "s4", "alice", "fine"),
        ApprovalDenied(env(ApprovalDenied, run_id, "a2"), "a2", "s5", "bob", None, True),
        RunCancelRequested(env(RunCancelRequested, run_id), "changed my mind", "user:carol"),
        RunCompleted(env(RunCompleted, run_id), 3, 1234, '{"booked": true}'),
        RunFailed(env(RunFailed, run_id), "step s2 failed", "s2", ("s1",), 99),
        RunCancelled(env(RunCancelled, run_id), "asked", "user:carol", ("s1",)),
        AuditRecorded(
            env(AuditRecorded, "audit-acme", "x"),
            "authn",
            "login",
            "failure",
            "key:omh_ab12",
            "/api/v1/goals",
            {"ip": "127.0.0.1"},
        ),
        AuditFactObserved(
            env(AuditFactObserved, "audit-acme", "f"),
            "authz",
            "goals:write",
            "denied",
            "api-key:ab12cd34",
            "POST /api/v1/goals",
            {"needed": "goals:write"},
        ),
        AuditCheckpointTaken(
            env(AuditCheckpointTaken, "audit-acme", "c"),
            41,
            "ab" * 32,
            datetime(2026, 1, 1, tzinfo=UTC),
            "free",
            30,
        ),
        ApiKeyCreated(
            env(ApiKeyCreated, "control-acme", "k1"),
            "k1",
            "ab12cd34",
            "9f" * 32,
            ("read", "goals:write"),
            "ci",
            AT + timedelta(days=90),
        ),
        ApiKeyRotated(
            env(ApiKeyRotated, "control-acme", "k1", "k2"),
            "k1",
            "k2",
            "ef56gh78",
            "ab" * 32,
            ("read",),
            AT + timedelta(hours=1),
            None,
        ),
        ApiKeyRevoked(env(ApiKeyRevoked, "control-acme", "k2"), "k2", "ef56gh78", "leaked"),
        KillSwitchToggled(
            env(KillSwitchToggled, "killswitch-goals.create", "t1"),
            "goals.create",
            False,
            "incident",
        ),
        PlanCacheInvalidated(
            env(PlanCacheInvalidated, "plan-cache-acme", "template", "t1"),
            "template",
            "Book flight to {DESTINATION}",
            "stale fares",
        ),
        PlanTemplateShared(
            env(PlanTemplateShared, "plan-cache-acme", "t1"),
            "Book flight to {DESTINATION}",
            ("globex", "initech"),
        ),
        *membership_events(),
    ]


WALLET = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def membership_events() -> list[Event]:
    """One of each issue-10 event: wallets, subscriptions and memberships."""
    return [
        WalletLinked(
            env(WalletLinked, "wallets-acme", WALLET, "n1"), WALLET, 31337, "omnihub.dev", "n1", AT
        ),
        WalletUnlinked(env(WalletUnlinked, "wallets-acme", WALLET, "u1"), WALLET, "lost key"),
        SubscriptionChanged(
            env(SubscriptionChanged, "tier-acme", "s1"),
            "pro",
            "annual plan",
            AT + timedelta(days=365),
        ),
        MembershipChanged(
            env(MembershipChanged, f"membership-31337-{CONTRACT}-1", 31337, "0xab", 0),
            31337,
            CONTRACT,
            "1",
            "minted",
            WALLET,
            "pro",
            AT + timedelta(days=30),
            12,
            "0x" + "cd" * 32,
            "0x" + "ab" * 32,
            0,
            None,
        ),
        DeviceRegistered(
            env(DeviceRegistered, "devices-acme", "d1"),
            "d1",
            "alice's phone",
            "A" * 43,
            ("approvals:decide",),
            AT,
        ),
        DeviceRevoked(env(DeviceRevoked, "devices-acme", "d1"), "d1", "lost"),
        NotificationChannelSet(
            env(NotificationChannelSet, "notify-acme", "c1"), "c1", "webhook", "https://x.example"
        ),
        ApproverNotified(
            env(ApproverNotified, "notify-acme", "a1", "c1"),
            "a1",
            "run-1",
            "c1",
            "webhook",
            "delivered",
            1,
        ),
        SubjectErased(env(SubjectErased, "run-1", "e1", "k1"), "e1", "k1", "subject", "user:dpo"),
    ]
