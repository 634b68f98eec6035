"""README's configuration table is the settings class, rendered: every setting, its
variable, default (secrets redacted) and description."""

from __future__ import annotations

import pytest
from pydantic.fields import FieldInfo

from apps.commands.config import _default, settings_table, with_table
from omnihub import REPO_ROOT
from omnihub.settings import Settings


def test_every_setting_is_described() -> None:
    undescribed = [n for n, f in Settings.model_fields.items() if not (f.description or "").strip()]
    assert undescribed == []


def test_readme_holds_the_table_rendered_from_the_settings_class() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert with_table(readme, settings_table()) == readme, (
        "README's settings table differs from omnihub/settings.py: run "
        "`omnihub config table --write README.md`"
    )


def test_the_table_has_one_row_per_setting_with_its_variable() -> None:
    rows = settings_table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    assert rows[0].startswith("| `OMNIHUB_ENV` | `local` | ")
    by_var = {row.split(" | ")[0].strip("| `"): row for row in rows}
    assert "At least 1." in by_var["OMNIHUB_TOPIC_PARTITIONS"]
    assert " | placeholder (refused in production) | " in by_var["OMNIHUB_SECRET_KEY"]
    assert " | unset | " in by_var["OMNIHUB_LLM_API_KEY"]


def test_secret_defaults_and_dsn_passwords_are_redacted() -> None:
    assert _default("llm_api_key", FieldInfo(default="sk-live-123")) == "`***`"
    assert _default("vapid_private_key", FieldInfo(default="-----BEGIN")) == "`***`"
    dsn = _default("postgres_dsn", FieldInfo(default="postgresql://app:hunter2@db/x"))
    assert dsn == "`postgresql://app:***@db/x`"


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings table"):
        with_table("# no table here\n", settings_table())
