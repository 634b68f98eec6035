"""The dashboard's pages: server-rendered shells (Jinja2) that a small script of our own
fills from the JSON API and the live stream. Sign-in exchanges an API key for a session
cookie. Every response under ``/dashboard`` carries a strict Content-Security-Policy:
scripts, styles, images and connections from this origin only, nothing inline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import Receive, Scope, Send

from api.deps import AppState
from api.security.deps import security_of
from api.security.sessions import COOKIE, Session

HERE = Path(__file__).parent
STATIC = HERE / "static"
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
PAGES = {
    "runs": "Runs",
    "approvals": "Approvals",
    "kpis": "KPIs",
    "live": "Live",
    "admin": "Admin",
    "audit": "Audit",
    "operations": "Operations",
    "notifications": "Notifications",
}

router = APIRouter(prefix="/dashboard", include_in_schema=False)
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())


class SecurityHeaders(BaseHTTPMiddleware):
    """The CSP and its companions on every dashboard response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the dashboard's own paths: BaseHTTPMiddleware runs each request in a task
        # with memory streams, and on the API's routes (which get no headers here) that
        # was the largest cost of POST /api/v1/goals beyond the route (py-spy, issue 15).
        if scope["type"] == "http" and not scope["path"].startswith("/dashboard"):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/dashboard"):
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["X-Frame-Options"] = "DENY"
        return response


def install(app: FastAPI) -> None:
    """Serve the dashboard from ``app``."""
    app.add_middleware(SecurityHeaders)
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")


def _render(name: str, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(pages=PAGES, **context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def _session(request: Request) -> Session | None:
    state: AppState = request.app.state.omnihub
    sessions = security_of(state).sessions
    return None if sessions is None else await sessions.find(request.cookies.get(COOKIE))


def _safe_next(target: str | None) -> str:
    # Only our own pages: an open redirect would make the sign-in page a phishing tool.
    if target and target.startswith("/dashboard/") and not target.startswith("//"):
        return target
    return "/dashboard/runs"


@router.get("/", response_model=None)
async def home() -> RedirectResponse:
    """The runs page."""
    return RedirectResponse("/dashboard/runs", 303)


@router.get("/signin", response_model=None)
async def signin_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form."""
    return _render(
        "signin.html",
        page="signin",
        title="Sign in",
        next=_safe_next(next),
        error=request.query_params.get("error"),
    )


@router.post("/signin", response_model=None)
async def signin(request: Request) -> Response:
    """An API key in, a session cookie out."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return Response("cross-site sign-in refused", 403)
    form = parse_qs((await request.body()).decode(errors="replace"))
    key = (form.get("api_key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    sessions = security_of(request.app.state.omnihub).sessions
    assert sessions is not None
    session, result = await sessions.open(key)
    if session is None:
        return RedirectResponse(
            f"/dashboard/signin?error={quote(result.reason)}&next={quote(target)}", 303
        )
    response = RedirectResponse(target, 303)
    response.set_cookie(
        COOKIE,
        session.session_id,
        max_age=sessions.ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout", response_model=None)
async def signout(request: Request) -> Response:
    """End the session (the form carries its CSRF token)."""
    session = await _session(request)
    form = parse_qs((await request.body()).decode(errors="replace"))
    if session is not None and (form.get("csrf") or [""])[0] == session.csrf:
        await security_of(request.app.state.omnihub).sessions.close(session.session_id)  # type: ignore[union-attr]
    response = RedirectResponse("/dashboard/signin", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/manifest.webmanifest", response_model=None)
async def manifest() -> FileResponse:
    """The PWA's manifest."""
    return FileResponse(STATIC / "manifest.webmanifest", media_type="application/manifest+json")


@router.get("/sw.js", response_model=None)
async def service_worker() -> FileResponse:
    """The service worker, served from /dashboard/ so that its scope is the dashboard."""
    return FileResponse(
        STATIC / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


@router.get("/offline", response_model=None)
async def offline_shell() -> HTMLResponse:
    """The page the service worker shows for a page it never cached."""
    return _render("offline.html", page="offline", title="Offline", csrf="", tenant="")


@router.get("/runs/{run_id}", response_model=None)
async def run_page(run_id: str, request: Request) -> Response:
    """One run: timeline, plan DAG, compensations, live."""
    return await _page(request, "run", run_id=run_id)


@router.get("/{name}", response_model=None)
async def page(name: str, request: Request) -> Response:
    """Any of the dashboard's list pages."""
    if name not in PAGES:
        return Response("not found", 404)
    return await _page(request, name)


async def _page(request: Request, name: str, **extra: Any) -> Response:
    session = await _session(request)
    if session is None:
        here = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/dashboard/signin?next={here}", 303)
    title = PAGES.get(name, "Run")
    return _render(
        "page.html", page=name, title=title, csrf=session.csrf, tenant=session.tenant_id, **extra
    )
