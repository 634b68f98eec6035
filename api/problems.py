"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.allow import allowed_methods
from domain.decisions import Refused
from domain.storable import storable_text
from streams.producer import LogUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://omnihub.dev/problems/"
LOG_RETRY_AFTER_S = 5


class InvalidParam(BaseModel):
    """One reason a request was refused as invalid."""

    location: list[str | int] = Field(description='Where, e.g. ["body", "goal"].')
    message: str
    type: str | None = None


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: the body of every error answer.

    Some problems carry more members (``errors`` on a 422 validation error, ``needed``
    on a 403, ``freshness`` on a 404 of a read)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What went wrong, for a human.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[InvalidParam] | None = Field(
        default=None, description="Every invalid parameter (validation errors only)."
    )


class Problem(Exception):
    """An error to answer with a problem-details body."""

    def __init__(
        self,
        status: int,
        type_: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    @classmethod
    def conflict(cls, refused: Refused) -> Problem:
        """A 409 for a decision a write-side rule refused, with the rule's facts."""
        problem = cls(409, refused.code, refused.detail)
        problem.extensions = dict(refused.facts)
        return problem


def problem_response(
    status: int,
    type_: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem-details response; ``type_`` is a slug under the problem type base URI."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status, exc.type, exc.detail, request.url.path, exc.headers, **exc.extensions
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "location": [_part(p) for p in e.get("loc", ())],
            "message": e.get("msg", ""),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"location": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["location"])
    return problem_response(
        422, "validation-error", f"{where}: {first['message']}", request.url.path, errors=errors
    )


def _part(part: Any) -> str | int:
    # A dict key that names the invalid field may itself be the invalid text.
    return part if isinstance(part, int) else storable_text(str(part))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # the router names one route's methods; a path may have more
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    return problem_response(exc.status_code, slug, str(exc.detail), request.url.path, headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's outermost middleware sends this one, past NoSniffMiddleware: say it here.
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        "internal-error",
        "an unexpected error; it was logged",
        request.url.path,
        {"X-Content-Type-Options": "nosniff"},
    )


async def _on_log_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The one place an append Kafka did not acknowledge becomes an answer: nothing was
    # recorded, so the client may retry (an Idempotency-Key makes the retry safe).
    return problem_response(
        503,
        "log-unavailable",
        f"not recorded: {exc}",
        request.url.path,
        {"Retry-After": str(LOG_RETRY_AFTER_S)},
    )


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(LogUnavailable, _on_log_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
