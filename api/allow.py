"""Which methods a path answers: the ``Allow`` header of an ``OPTIONS`` or a 405.

Starlette's router names the methods of the first route whose path matches, but one path
may have several routes (``GET`` and ``POST /api/v1/approvals/{id}``); this asks them all.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Mount
from starlette.types import Scope

CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route of ``app`` answers at ``scope``'s path (with ``OPTIONS``),
    sorted; empty when no route has that path."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Mount):  # static assets: read-only
            if route.matches({**scope, "method": "GET"})[0] is not Match.NONE:
                methods |= {"GET", "HEAD"}
            continue
        for method in CANDIDATES:
            if route.matches({**scope, "method": method})[0] is Match.FULL:
                methods.add(method)
    return sorted(methods | {"OPTIONS"}) if methods else []
