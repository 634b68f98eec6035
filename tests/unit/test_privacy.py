"""Crypto-shredding, the pure part: marked fields, sealed values, erased reads."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence

from domain.events import Event, GoalReceived, PlanGenerated, WalletUnlinked
from domain.privacy import (
    ERASED,
    erase_json,
    key_id_of,
    map_paths,
    open_all,
    open_text,
    personal_paths,
    seal_text,
    sealed_strings,
)
from domain.run_view import evolve_run
from domain.timeline import erased_summary
from omnihub import REPO_ROOT
from streams.privacy import Privacy, open_fields
from streams.schema_registry import SchemaRegistry, fingerprint_of
from tests.factories import WALLET, all_events, goal_received, membership_events

SCHEMAS = REPO_ROOT / "schemas"


def test_marks_leave_fingerprints_as_released() -> None:
    released = json.loads((SCHEMAS / "released.json").read_text())
    for path in SCHEMAS.glob("*.avsc"):
        if path.name in released:
            assert fingerprint_of(json.loads(path.read_text())).hex() == released[path.name]


def test_schemas_declare_the_personal_fields() -> None:
    registry = SchemaRegistry.from_dir(SCHEMAS)
    paths = {t: personal_paths(registry.latest(t).raw) for t in registry.event_types}
    assert paths["goal_received"] == (("goal",), ("context",))
    assert ("steps", "*", "arguments_json") in paths["plan_generated"]
    assert paths["approval_granted"] == (("reason",),)
    assert paths["step_completed"] == (("result_json",),)
    assert paths["step_started"] == ()
    # The control plane's free text (issue 13): reasons and names typed by a tenant.
    for event_type in ("kill_switch_toggled", "api_key_revoked", "device_revoked"):
        assert paths[event_type] == (("reason",),)
    assert paths["subscription_changed"] == paths["wallet_unlinked"] == (("reason",),)
    assert paths["plan_cache_invalidated"] == (("reason",),)
    assert paths["device_registered"] == paths["api_key_created"] == (("name",),)
    # Identities and matching keys stay clear: actors (accountability), a wallet's
    # address (matched against public chain events), a key's prefix and hash.
    assert paths["wallet_linked"] == paths["membership_changed"] == ()


def test_seal_open_and_erase() -> None:
    key = os.urandom(32)
    sealed = seal_text("k1", key, "Alice Example")
    assert "Alice" not in sealed and key_id_of(sealed) == "k1"
    assert open_text(sealed, key) == "Alice Example"
    assert open_text(sealed, None) == ERASED
    assert open_text(sealed, os.urandom(32)) == ERASED  # the wrong key opens nothing


def test_events_seal_and_open_at_every_depth() -> None:
    key = os.urandom(32)
    events = {e.EVENT_TYPE: e for e in all_events()}
    registry = SchemaRegistry.from_dir(SCHEMAS)
    for event_type in ("goal_received", "plan_generated"):
        event = events[event_type]
        paths = personal_paths(registry.latest(event_type).raw)
        sealed = map_paths(event, paths, lambda t: seal_text("k1", key, t))
        assert list(sealed_strings(sealed))
        assert open_all(sealed, lambda s: open_text(s, key)) == event
        erased = open_all(sealed, lambda s: open_text(s, None))
        if isinstance(erased, GoalReceived):
            assert erased.goal == ERASED and set(erased.context.values()) <= {ERASED}
        if isinstance(erased, PlanGenerated):
            assert {s.arguments_json for s in erased.steps} == {ERASED}


def test_erase_json_matches_a_replay_without_the_key() -> None:
    payload = {"goal": "Alice", "context": {"who": "Alice"}, "reason": "", "tool": "x"}
    names = frozenset({"goal", "context", "reason"})
    assert erase_json(payload, names) == {
        "goal": ERASED,
        "context": {"who": ERASED},
        "reason": "",  # empty values are never sealed
        "tool": "x",
    }


def test_erase_json_leaves_sealed_values_as_a_replay_stores_them() -> None:
    sealed = seal_text("k1", bytes(32), "Alice")  # an audit record's copy of a reason
    details = {"reason": sealed, "run_id": "r1"}
    assert erase_json(details, frozenset({"reason"})) == details
    assert open_text(sealed, None) == ERASED  # ...which reads erased without its key


class MemoryKeys:
    """A fake key store (pure-logic tests; the Postgres one is tested on the stack)."""

    def __init__(self) -> None:
        self.by_id: dict[str, bytes] = {}
        self.asked = 0
        self.bound: list[tuple[str, str, str | None, bool]] = []

    async def key_for_run(
        self, tenant_id: str, run_id: str, subject: str | None, new_run: bool = False
    ) -> tuple[str, bytes]:
        self.bound.append((tenant_id, run_id, subject, new_run))
        key_id = f"{tenant_id}-{subject or 'tenant'}"  # real ids are hex, never ":"
        return key_id, self.by_id.setdefault(key_id, os.urandom(32))

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        self.asked += 1
        return {k: self.by_id.get(k) for k in key_ids}

    async def close(self) -> None:
        return None


async def test_privacy_seals_per_subject_opens_with_cached_keys_and_forgets() -> None:
    store = MemoryKeys()
    privacy = Privacy(SchemaRegistry.from_dir(SCHEMAS), store)
    goal = dataclasses.replace(
        goal_received(), goal="Call Alice", context={"data_subject": "alice@example.com"}
    )
    (sealed,) = await privacy.seal([goal])
    assert isinstance(sealed, GoalReceived) and "Alice" not in sealed.goal
    assert key_id_of(sealed.goal) == "acme-alice@example.com"  # the named subject's key
    assert await privacy.open([sealed, sealed]) == [goal, goal]
    assert await privacy.open_one(sealed) == goal
    assert store.asked == 1  # one look-up, then the cache
    del store.by_id["acme-alice@example.com"]  # destroyed elsewhere...
    privacy.forget("acme-alice@example.com")  # ...and this process saw subject_erased
    erased = await privacy.open_one(sealed)
    assert isinstance(erased, GoalReceived) and erased.goal == ERASED
    assert set(erased.context.values()) == {ERASED}


def test_subject_erased_folds_into_the_run_and_reads_as_a_replay_would() -> None:
    run = [e for e in all_events() if e.envelope.run_id == "run-1"]
    before = None
    for event in run:
        if event.EVENT_TYPE != "subject_erased":
            before = evolve_run(before, event)
    erasure = next(e for e in run if e.EVENT_TYPE == "subject_erased")
    after = evolve_run(before, erasure)
    assert after.goal == ERASED
    assert after.status == before.status and after.event_count == before.event_count + 1
    assert erased_summary("goal_received", "goal received: Call Alice") == (
        "goal received: [erased]"
    )
    assert erased_summary("step_started", "step s1 (x) started, attempt 1") == (
        "step s1 (x) started, attempt 1"
    )


CONTROL_TEXT = (  # every control-plane event a tenant or an operator types text into
    "api_key_created",
    "api_key_revoked",
    "kill_switch_toggled",
    "device_registered",
    "device_revoked",
    "subscription_changed",
    "wallet_unlinked",
    "plan_cache_invalidated",
)


def _control_events() -> list[Event]:
    events = {e.EVENT_TYPE: e for e in all_events() + membership_events()}
    return [events[t] for t in CONTROL_TEXT]


def _in(event: Event, tenant: str) -> Event:
    return dataclasses.replace(
        event, envelope=dataclasses.replace(event.envelope, tenant_id=tenant)
    )


async def test_control_plane_text_is_sealed_with_its_tenants_key() -> None:
    store = MemoryKeys()
    privacy = Privacy(SchemaRegistry.from_dir(SCHEMAS), store)
    control = _control_events()
    switch = control[2]
    # A kill switch is platform-wide and its stream shared: each tenant's toggle is
    # sealed with that tenant's key; an event of no tenant with the platform's.
    others = [_in(switch, "globex"), _in(switch, "")]
    sealed = await privacy.seal([*control, *others])
    for before, after in zip([*control, *others], sealed, strict=True):
        (text,) = sealed_strings(after)
        assert key_id_of(text) == f"{before.envelope.tenant_id or '*'}-tenant"
    # Never the key a stream was bound to before (a shared one, a data subject's): the
    # tenant's live key, as for a new run, which binds the stream so an erasure names it.
    assert {b[2:] for b in store.bound} == {(None, True)}
    assert ("globex", "killswitch-goals.create", None, True) in store.bound
    assert ("*", "killswitch-goals.create", None, True) in store.bound
    assert await privacy.open(sealed) == [*control, *others]
    # Identities stay clear: who did it (the audit chain names them), a wallet's address.
    unlinked = sealed[CONTROL_TEXT.index("wallet_unlinked")]
    assert isinstance(unlinked, WalletUnlinked) and unlinked.address == WALLET
    assert all(a.envelope == b.envelope for a, b in zip(control, sealed, strict=False))


@dataclasses.dataclass(frozen=True)
class _Row:
    name: str
    kept: str


async def test_a_read_model_keeps_control_text_sealed_and_its_readers_open_it() -> None:
    store = MemoryKeys()
    privacy = Privacy(SchemaRegistry.from_dir(SCHEMAS), store)
    device = _control_events()[3]
    (sealed,) = await privacy.seal([device])
    rows = [_Row(sealed.name, "x"), _Row("", "y")]  # type: ignore[attr-defined]
    assert await open_fields(privacy, rows, "name") == [_Row("alice's phone", "x"), _Row("", "y")]
    assert await open_fields(None, rows, "name") == rows  # nothing to open with
    assert await privacy.open_texts(["plain", sealed.name]) == ["plain", "alice's phone"]  # type: ignore[attr-defined]
    del store.by_id["acme-tenant"]  # the tenant erased...
    privacy.forget("acme-tenant")
    assert [r.name for r in await open_fields(privacy, rows, "name")] == [ERASED, ""]
