"""Text every read model can hold (domain.storable), and the fold escaping it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain import ids
from domain.events import StepFailed
from domain.storable import storable, storable_text, unstorable, utf8_safe, utf8_text
from projections.fold import Loaded, fold_batch

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=50)


@given(ANY_TEXT)
def test_storable_text_is_utf8_without_nul_and_clean_text_is_kept(text: str) -> None:
    out = storable_text(text)
    assert "\x00" not in out
    out.encode("utf-8")
    assert unstorable(out) is None
    if unstorable(text) is None:
        assert out is text


def test_nul_and_lone_surrogates_become_json_escapes() -> None:
    assert storable_text("a\x00b\ud800c\U0001f600") == "a\\u0000b\\ud800c\U0001f600"
    nested = {"k\x00": ("x", ["\x00"])}
    assert storable(nested) == {"k\\u0000": ("x", ["\\u0000"])}
    clean = {"k": ("x", ["y"])}
    assert storable(clean) is clean


def test_the_fold_escapes_what_a_tool_reported() -> None:
    env = ids.envelope(
        StepFailed,
        run_id="r1",
        tenant_id="t",
        actor="saga",
        correlation_id="r1",
        discriminator=("s1",),
    )
    failed = StepFailed(env, "s1", "http_call", 1, "Boom", "bad byte \x00 here", False, True)
    changes = fold_batch(Loaded(), [failed])
    (entry,) = changes.timeline
    assert entry.payload["error_message"] == "bad byte \\u0000 here"


def test_for_the_log_only_surrogates_are_escaped() -> None:
    assert utf8_text("keep \x00 nul, fix \udc80") == "keep \x00 nul, fix \\udc80"
    env = ids.envelope(
        StepFailed,
        run_id="r1",
        tenant_id="t",
        actor="saga",
        correlation_id="r1",
        discriminator=("s1",),
    )
    failed = StepFailed(env, "s1", "http_call", 1, "Boom", "reply \udc80", False, True)
    assert utf8_safe(failed).error_message == "reply \\udc80"
    clean = StepFailed(env, "s1", "http_call", 1, "Boom", "fine", False, True)
    assert utf8_safe(clean) is clean


async def test_a_saga_fact_with_a_surrogate_is_appended_encodable() -> None:
    from omnihub.settings import Settings
    from sagas.activity_base import ActivityBase
    from streams.codec import EventCodec
    from streams.schema_registry import SchemaRegistry

    class Appender:
        events: list[object] = []

        async def append(self, event: object) -> None:
            codec = EventCodec(SchemaRegistry.from_dir(Settings().schemas_dir))
            codec.encode(event)  # type: ignore[arg-type]  # raises if UTF-8 cannot carry it
            self.events.append(event)

    base = ActivityBase.__new__(ActivityBase)
    base._appender = Appender()  # type: ignore[assignment]
    env = ids.envelope(
        StepFailed,
        run_id="r1",
        tenant_id="t",
        actor="saga",
        correlation_id="r1",
        discriminator=("s1",),
    )
    await base._append(StepFailed(env, "s1", "http_call", 1, "Boom", "x \ud800", False, True))
    assert base._appender.events  # type: ignore[attr-defined]
