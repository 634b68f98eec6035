"""OmniDash in a real browser: Debian's chromium driven by Playwright, against the whole
pipeline (API, gateway processor, projector, saga bridge, worker) on the test stack.

Any console error or Content-Security-Policy violation fails the test, and axe-core
(npm, tests/browser/) must find no serious or critical violation on any page.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Route,
    async_playwright,
    expect,
)

from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.saga_support import omnihub_process, unique

AXE = REPO_ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots go to docs/ (the README shows them) only when asked, so a test run leaves
# the tree clean: OMNIHUB_DASHBOARD_SCREENSHOTS=1.
SHOTS = REPO_ROOT / "docs" if os.environ.get("OMNIHUB_DASHBOARD_SCREENSHOTS") else None
PAGES = ("runs", "approvals", "kpis", "live", "admin", "audit", "operations", "notifications")
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_TEMPORAL_TASK_QUEUE=unique("dash"),
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_CONCURRENCY_LIMIT="100",
        OMNIHUB_STREAM_HEARTBEAT_S="2",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("dash")
    with ExitStack() as stack:
        stack.enter_context(running_processor(env, logs))
        stack.enter_context(omnihub_process(env, logs / "projector.log", "projector", "run"))
        stack.enter_context(omnihub_process(env, logs / "worker.log", "worker", "run"))
        stack.enter_context(omnihub_process(env, logs / "bridge.log", "saga-bridge", "run"))
        stack.enter_context(omnihub_process(env, logs / "notifier.log", "notifier", "run"))
        yield stack.enter_context(running_api(env, logs))


@pytest.fixture(scope="module")
def key(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "dash", "admin,platform:killswitch")


@pytest.fixture(scope="module")
def approver(api: str, env: dict[str, str]) -> CliKey:
    """Another principal of the tenant: the one who posts a goal may not approve it."""
    return cli_key(env, "dash", "read,approvals:decide")


class Watch:
    """Console errors and CSP violations of a page: each one fails the test."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", self._uncaught)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} @ {message.location.get('url')}")

    def _uncaught(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")

    async def csp(self, page: Page) -> list[Any]:
        found: list[Any] = await page.evaluate("window.__csp || []")
        return found


CSP_HOOK = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return SHOTS or tmp_path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed (infra/setup.sh installs it)"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


async def signed_in(
    browser: Browser, api: str, key: CliKey, watch: Watch, **options: Any
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=api, viewport={"width": 1280, "height": 900}, **options
    )
    await context.add_init_script(CSP_HOOK)
    page = await context.new_page()
    watch.attach(page)
    await page.goto("/dashboard/runs")
    await expect(page).to_have_url(re.compile(r"/dashboard/signin\?next="))
    await page.get_by_label("API key").fill(key.key)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/dashboard/runs$"))
    cookie = next(c for c in await context.cookies() if c["name"] == "omnihub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    return context, page


async def post_goal(page: Page, goal: str) -> str:
    await page.goto("/dashboard/runs")
    await expect(page.locator("#status")).to_have_text(re.compile("live"), timeout=WAIT_MS)
    await page.get_by_label("New goal").fill(goal)
    await page.get_by_role("button", name="Post goal").click()
    status = page.locator("#status")
    await expect(status).to_have_text(re.compile(r"goal accepted: run \S+"), timeout=WAIT_MS)
    match = re.search(r"run (\S+)", await status.inner_text())
    assert match
    return match.group(1)


async def decide(page: Page, run_id: str, button: str, reason: str) -> None:
    await page.goto("/dashboard/approvals")
    row = page.locator("#approvals tbody tr", has=page.get_by_role("link", name=run_id))
    await expect(row).to_have_count(1, timeout=WAIT_MS)
    await row.get_by_placeholder("reason").fill(reason)
    await row.get_by_role("button", name=button).click()
    await expect(page.locator("#status")).to_have_text(re.compile(r"(approved|denied) "))


async def test_dashboard_live_runs_approvals_and_pwa(
    browser: Browser, api: str, key: CliKey, approver: CliKey, shots: Path
) -> None:
    watch = Watch()
    context, page = await signed_in(browser, api, key, watch)
    deciding, decider = await signed_in(browser, api, approver, watch)

    # A goal posted from the runs page completes live: its row changes without a reload.
    run_id = await post_goal(page, "say hello then upper world")
    await page.evaluate("window.__noReload = true")
    row = page.locator(f'#runs tr[data-run="{run_id}"]')
    await expect(row.locator(".status")).to_have_text("completed", timeout=WAIT_MS)
    assert await page.evaluate("window.__noReload") is True

    # Approve a waiting step from the approvals page: the run continues to completion.
    approved = await post_goal(page, "say hi then approve the payment")
    await decide(decider, approved, "Approve", "looks right")
    await page.goto(f"/dashboard/runs/{approved}")
    await expect(page.locator("#summary .badge")).to_have_text("completed", timeout=WAIT_MS)
    await expect(page.locator('#dag [data-step="s2"]')).to_have_class(re.compile("n-completed"))

    # Deny another: its run fails and the saved step's compensation appears, live.
    denied = await post_goal(page, "save the draft then make the payment")
    await expect(page.locator(f'#runs tr[data-run="{denied}"] .status')).to_have_text(
        "awaiting_approval", timeout=WAIT_MS
    )
    await page.goto(f"/dashboard/runs/{denied}")
    await expect(page.locator('#dag [data-step="s2"]')).to_have_class(
        re.compile("n-awaiting_approval"), timeout=WAIT_MS
    )
    await decide(decider, denied, "Deny", "not today")
    await expect(page.locator("#compensations li")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#summary .badge")).to_have_text("failed", timeout=WAIT_MS)
    await expect(page.locator('#timeline li[data-type="approval_denied"]')).to_have_count(1)
    await page.screenshot(path=str(shots / "dashboard-run.png"), full_page=True)

    # The PWA: the manifest is served and the service worker controls the dashboard.
    manifest = await page.evaluate("fetch('/dashboard/manifest.webmanifest').then(r => r.json())")
    assert manifest["start_url"] == "/dashboard/runs" and manifest["icons"]
    scope = await page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope.endswith("/dashboard/")

    # A channel for approvers, from the notifications page; and one approval left
    # pending, so that the approvals page has something to show.
    await page.goto("/dashboard/notifications")
    await page.get_by_label("Target").fill("https://hooks.example/omnihub")
    await page.get_by_role("button", name="Add channel").click()
    await expect(page.locator("#channels tbody")).to_contain_text("https://hooks.example/omnihub")
    waiting = await post_goal(page, "say hi then approve the payment")
    await expect(page.locator(f'#runs tr[data-run="{waiting}"] .status')).to_have_text(
        "awaiting_approval", timeout=WAIT_MS
    )

    # Every page: no serious accessibility violation; the main ones into docs/.
    axe = AXE.read_text()
    for name in PAGES:
        await page.goto(f"/dashboard/{name}")
        await page.wait_for_load_state("networkidle")
        await page.evaluate(axe)
        serious = await page.evaluate(
            "axe.run().then(r => r.violations.filter(v => ['serious','critical']"
            ".includes(v.impact)).map(v => v.id + ': ' + v.nodes.map(n => n.target).join(' ')))"
        )
        assert serious == [], f"{name}: {serious}"
        assert await watch.csp(page) == [], name
        await page.screenshot(path=str(shots / f"dashboard-{name}.png"), full_page=True)

    # The audit page shows its page's verification, and switches to the platform chain,
    # where a kill switch (here: one left as it was) is chained for every tenant.
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        r = await client.put(
            "/api/v1/admin/kill-switches/llm_planner",
            json={"enabled": True, "reason": "dashboard audit check"},
            headers={"Authorization": f"Bearer {key.key}"},
        )
        assert r.status_code < 300, r.text
    await page.goto("/dashboard/audit")
    verified = re.compile(r"^this page verified: sequences \d+.\d+, \d+ records hashed")
    await expect(page.locator("#page-check")).to_have_text(verified, timeout=WAIT_MS)
    await expect(page.locator("#chain")).to_have_text(re.compile("^chain verified from the log"))
    platform = page.locator("#audit tbody tr", has_text="feature:llm_planner")
    for _ in range(60):  # the chainer links the toggle within moments
        await page.get_by_label("Chain").select_option("tenant")
        await expect(page.locator("#status")).to_have_text(re.compile("tenant chain"))
        await page.get_by_label("Chain").select_option("platform")
        await expect(page.locator("#status")).to_have_text(re.compile("platform chain"))
        if await platform.count():
            break
        await page.wait_for_timeout(500)
    await expect(platform.first).to_be_visible()
    await expect(page.locator("#page-check")).to_have_text(verified)
    await expect(page.locator("#chain")).to_have_text(
        re.compile("^platform chain verified from the log"), timeout=WAIT_MS
    )
    assert await watch.csp(page) == [], "audit"

    # Offline, a page opened before shows its last data, marked stale.
    await page.goto("/dashboard/runs")
    await expect(page.locator(f'#runs tr[data-run="{run_id}"]')).to_have_count(1)
    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("#stale")).to_have_text(re.compile("stale"), timeout=15_000)
    await expect(page.locator(f'#runs tr[data-run="{run_id}"]')).to_have_count(1)
    await context.set_offline(False)
    await deciding.close()

    offline_noise = [
        e for e in watch.errors if "ERR_INTERNET_DISCONNECTED" in e or "/api/v1/stream" in e
    ]
    assert [e for e in watch.errors if e not in offline_noise] == []
    await context.close()


async def test_a_state_change_without_the_csrf_token_is_refused(
    browser: Browser, api: str, key: CliKey
) -> None:
    watch = Watch()
    context, page = await signed_in(browser, api, key, watch)
    status = await page.evaluate(
        "fetch('/api/v1/goals', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        " body: JSON.stringify({goal: 'say hi'})}).then(r => r.status)"
    )
    assert status == 403
    csp = page.locator("meta[name=csrf-token]")
    token = await csp.get_attribute("content")
    status = await page.evaluate(
        "t => fetch('/api/v1/goals', {method: 'POST', headers: {'Content-Type':"
        " 'application/json', 'X-CSRF-Token': t}, body: JSON.stringify({goal: 'say hi'})})"
        ".then(r => r.status)",
        token,
    )
    assert status == 202
    await context.close()


async def test_a_run_posted_while_the_first_read_is_slow_still_gets_its_row(
    browser: Browser, api: str, key: CliKey
) -> None:
    """The runs page's first read can answer after the stream already brought a new run
    (a busy projector, a slow network): the read's older table must not drop that run."""
    watch = Watch()
    # No service worker: its fetches would pass by the page's routes.
    context, page = await signed_in(browser, api, key, watch, service_workers="block")
    read, late, answered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def answer_late(route: Route) -> None:
        if late.is_set():
            await route.continue_()
            return
        response = await route.fetch()  # read now, answered after the goal is on the stream
        read.set()
        await late.wait()
        await route.fulfill(response=response)
        answered.set()

    await page.route(re.compile(r"/api/v1/runs\?"), answer_late)
    await page.goto("/dashboard/runs")
    await asyncio.wait_for(read.wait(), WAIT_MS / 1000)  # the table's read, before the goal
    await page.get_by_label("New goal").fill("say hello then upper world")
    await page.get_by_role("button", name="Post goal").click()
    status = page.locator("#status")
    await expect(status).to_have_text(re.compile(r"goal accepted: run \S+"), timeout=WAIT_MS)
    run_id = (await status.inner_text()).rsplit(" ", 1)[-1]
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        for _ in range(WAIT_MS // 500):  # every event of the run is on the page's stream
            r = await client.get(
                f"/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {key.key}"}
            )
            if r.status_code == 200 and r.json()["status"] == "completed":
                break
            await asyncio.sleep(0.5)
    late.set()
    await answered.wait()
    await asyncio.sleep(1)  # the page renders the older read
    row = page.locator(f'#runs tr[data-run="{run_id}"]')
    await expect(row.locator(".status")).to_have_text("completed", timeout=WAIT_MS)
    assert watch.errors == []
    await context.close()
