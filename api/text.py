"""Strings the API accepts only if every read model can hold them (see domain.storable).

``Text`` refuses U+0000 and unpaired surrogates with a 422 that names the field; its
JSON Schema says the same about NUL (``pattern``), so the document and the behaviour
agree. Use it for every request string that can reach Postgres.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from domain.storable import unstorable

NO_NUL_PATTERN = "^[^\\u0000]*$"


def _storable(value: str) -> str:
    why = unstorable(value)
    if why is not None:
        raise ValueError(why)
    return value


Text = Annotated[
    str, AfterValidator(_storable), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
]
"""A request string that Postgres ``text`` and ``jsonb`` can store."""
