"""The dashboard's security headers: on its pages, not on the API it sits beside."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from api.dashboard.pages import CSP, SecurityHeaders


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityHeaders)

    @app.get("/dashboard/runs")
    def page() -> PlainTextResponse:
        return PlainTextResponse("page", headers={"X-Frame-Options": "SAMEORIGIN"})

    @app.get("/api/v1/runs")
    def api() -> PlainTextResponse:
        return PlainTextResponse("api")

    return app


def test_dashboard_responses_carry_the_csp_and_its_companions() -> None:
    got = TestClient(_app()).get("/dashboard/runs")
    assert got.text == "page"
    assert got.headers["content-security-policy"] == CSP
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["referrer-policy"] == "same-origin"
    assert got.headers.get_list("x-frame-options") == ["DENY"]  # set, not appended


def test_api_responses_pass_through_untouched() -> None:
    got = TestClient(_app()).get("/api/v1/runs")
    assert got.text == "api"
    assert "content-security-policy" not in got.headers
