"""What an approver is shown (pure): the step's arguments and inputs with personal
values redacted, and what undoing the step would do.

The redaction rule: a value is personal when its key names personal data (an email,
phone, name, address, birth date, national or account identifier; see
:data:`PERSONAL_KEYS`) or ends in ``_pii``, and any email address inside a text is
personal too. A personal value is replaced by ``"[redacted]"``, at any depth. The rule
is deliberately small and errs on hiding: an approver sees that a value exists and
where, not what it is; the run itself still uses the real value.
"""

from __future__ import annotations

import json
import re
from typing import Any

REDACTED = "[redacted]"
PERSONAL_KEYS = frozenset(
    {
        "email",
        "e_mail",
        "phone",
        "mobile",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "address",
        "street",
        "postcode",
        "zip",
        "birth_date",
        "date_of_birth",
        "dob",
        "ssn",
        "national_id",
        "passport",
        "iban",
        "account_number",
        "card_number",
        "ip",
    }
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def is_personal_key(key: str) -> bool:
    """Whether a value under ``key`` is personal data by the rule above."""
    normal = key.lower().replace("-", "_")
    return normal in PERSONAL_KEYS or normal.endswith("_pii")


def redact(value: Any) -> Any:
    """``value`` (decoded JSON) with its personal values replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {k: REDACTED if is_personal_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _EMAIL.sub(REDACTED, value)
    return value


def redacted_json(text: str) -> str:
    """A JSON document's text with personal values redacted (sorted keys)."""
    try:
        return json.dumps(redact(json.loads(text)), sort_keys=True)
    except ValueError:
        return json.dumps(REDACTED)


def compensation_effect(tool: str, compensation: str | None, arguments: Any) -> str:
    """One sentence on what undoing the step would do, for the approver."""
    args = arguments if isinstance(arguments, dict) else {}
    if not compensation or compensation == "noop":
        return f"nothing to undo: {tool} has no effect outside the run"
    if compensation == "pg_record_compensate":
        collection = args.get("collection", "?")
        return f"marks the record this step writes to {collection!r} as compensated"
    if compensation == "http_compensate":
        url = args.get("compensate_url")
        if url:
            return f"sends DELETE {_EMAIL.sub(REDACTED, str(url))} to undo the call"
        return "nothing: the call has no compensate_url, so it cannot be undone once sent"
    return f"runs {compensation} for {tool}"
