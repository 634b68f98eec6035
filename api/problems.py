"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.decisions import Refused
from streams.producer import LogUnavailable

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://omnihub.dev/problems/"
LOG_RETRY_AFTER_S = 5


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
        {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"location": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["location"])
    return problem_response(
        422, "validation-error", f"{where}: {first['message']}", request.url.path, errors=errors
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    return problem_response(
        exc.status_code, slug, str(exc.detail), request.url.path, dict(exc.headers or {})
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
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(LogUnavailable, _on_log_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
