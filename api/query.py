"""A query parameter is given once: ``until=...&until=false`` is a 422, not one of them.

FastAPI would silently take the last value of a repeated scalar parameter. Every query
parameter OmniHub declares is a single value, so any repetition is refused, naming it.
"""

from __future__ import annotations

from collections import Counter

from fastapi import Request

from api.problems import Problem
from domain.storable import storable_text


async def single_valued_query(request: Request) -> None:
    """422 ``repeated-parameter`` if a query parameter appears more than once."""
    counts = Counter(key for key, _ in request.query_params.multi_items())
    repeated = sorted(key for key, n in counts.items() if n > 1)
    if repeated:
        name = storable_text(repeated[0])
        raise Problem(
            422,
            "repeated-parameter",
            f"query.{name}: given {counts[repeated[0]]} times; give it once",
            errors=[
                {"location": ["query", storable_text(k)], "message": "repeated", "type": "repeated"}
                for k in repeated
            ],
        )
