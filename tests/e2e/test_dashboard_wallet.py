"""Signing in to OmniDash with a wallet, in a real browser (Debian's chromium, Playwright).

The page talks to an EIP-1193 provider injected as ``window.ethereum``; its
``personal_sign`` is answered by Python with a real ``eth_account`` key, so the
signature the API checks is real. The wallet is linked to the tenant first through the
API (nonce + verify with an admin key, as the demo does). Signed in, it sees the runs
page and the tenant's tier on the admin page; once unlinked, its session stops working.
An unlinked wallet is refused with a clear message, and a wallet linked to two tenants
picks one. Console errors (other than the refusals the test provokes) and CSP
violations fail the test; axe must find no serious violation on the sign-in page.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.async_api import Browser, BrowserContext, Page, expect

from domain.events import AuditFactObserved
from domain.siwe import SiweMessage, render
from infra.launch import running_api
from infra.stack import StackConfig
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.e2e.test_dashboard_browser import AXE, CSP_HOOK, Watch, browser, decide  # noqa: F401
from tests.e2e.test_wallet import control_events
from tests.saga_support import omnihub_process, unique

WALLET = Account.create()
STRANGER = Account.create()
SHARED = Account.create()
APPROVER = Account.create()
TENANT = f"dw-{uuid.uuid4().hex[:8]}"
OTHER_TENANT = f"dw-{uuid.uuid4().hex[:8]}"
WAIT_MS = 60_000
# The refusals this test provokes on purpose show as failed loads in the console.
PROVOKED = re.compile(r"Failed to load resource: the server responded with a status of 40[139]")

PROVIDER = """
window.ethereum = {
  isOmniHubTest: true,
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts") return ["%s"];
    if (method === "personal_sign") return await window.__personalSign(params[0], params[1]);
    throw new Error("unsupported method " + method);
  },
};
"""


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_TEMPORAL_TASK_QUEUE=unique("dashwallet"),
        # The sign-in loops below retry while a link is folded: no per-client limit here
        # (tests/unit/test_wallet_sessions.py checks it).
        OMNIHUB_WALLET_SIGNIN_PER_MINUTE="100000",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("dashwallet")
    with ExitStack() as stack:
        stack.enter_context(running_processor(env, logs))
        stack.enter_context(omnihub_process(env, logs / "projector.log", "projector", "run"))
        stack.enter_context(omnihub_process(env, logs / "worker.log", "worker", "run"))
        stack.enter_context(omnihub_process(env, logs / "bridge.log", "saga-bridge", "run"))
        yield stack.enter_context(running_api(env, logs))


@pytest.fixture(scope="module")
def admin(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, TENANT, "admin")


def signed(n: dict[str, Any], account: Any, signer: Any = None) -> dict[str, str]:
    """The SIWE message for nonce answer ``n`` naming ``account``, signed by ``signer``."""
    now = datetime.now(UTC).replace(microsecond=0)
    text = render(
        SiweMessage(
            domain=n["domain"],
            address=account.address,
            uri=n["uri"],
            chain_id=n["chain_id"],
            nonce=n["nonce"],
            issued_at=now,
            expiration_time=now + timedelta(minutes=2),
            statement=n["statement"],
        )
    )
    signature = Account.sign_message(encode_defunct(text=text), (signer or account).key).signature
    return {"message": text, "signature": "0x" + signature.hex().removeprefix("0x")}


async def link(api: str, key: str, account: Any) -> None:
    """Link ``account`` to the key's tenant through the API, as the demo does."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        n = (await c.post("/api/v1/auth/wallet/nonce", headers=auth)).json()
        body = signed(n, account)
        r = await c.post("/api/v1/auth/wallet/verify", headers=auth, json=body)
        assert r.status_code == 200, r.text


async def with_wallet(browser: Browser, api: str, account: Any, watch: Watch) -> Page:  # noqa: F811
    """A page whose browser has ``account`` as its wallet (real signatures)."""
    context: BrowserContext = await browser.new_context(base_url=api)
    await context.add_init_script(CSP_HOOK)
    # Wallets hand out lower-case addresses: the server gives the page the EIP-55 form.
    await context.add_init_script(PROVIDER % account.address.lower())

    def personal_sign(hex_message: str, address: str) -> str:
        assert address == account.address, address
        signed = Account.sign_message(encode_defunct(hexstr=hex_message), account.key)
        return "0x" + signed.signature.hex().removeprefix("0x")

    await context.expose_function("__personalSign", personal_sign)
    page = await context.new_page()
    watch.attach(page)
    return page


async def sign_in(page: Page, expect_url: str = r"^[^?]*/dashboard/runs$") -> None:
    """Press "Sign in with wallet" until the session opens (the link may still be folding)."""
    await page.goto("/dashboard/runs")
    await expect(page).to_have_url(re.compile(r"/dashboard/signin\?next="))
    for _ in range(60):
        await page.get_by_role("button", name="Sign in with wallet").click()
        try:
            await expect(page).to_have_url(re.compile(expect_url), timeout=1_500)
            return
        except AssertionError:
            await expect(page.locator("#wallet-status")).to_contain_text("refused")
    raise AssertionError(await page.locator("#wallet-status").inner_text())


async def status_of(page: Page, path: str) -> int:
    status: int = await page.evaluate("p => fetch(p).then(r => r.status)", path)
    return status


async def test_a_linked_wallet_signs_in_sees_its_tier_and_is_out_once_unlinked(
    browser: Browser,  # noqa: F811
    api: str,
    admin: CliKey,
) -> None:
    await link(api, admin.key, WALLET)
    watch = Watch()
    page = await with_wallet(browser, api, WALLET, watch)

    await page.goto("/dashboard/signin")
    await page.evaluate(AXE.read_text())
    serious = await page.evaluate(
        "axe.run().then(r => r.violations.filter(v => ['serious','critical']"
        ".includes(v.impact)).map(v => v.id))"
    )
    assert serious == []

    await sign_in(page)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "omnihub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    await expect(page.locator(".tenant")).to_contain_text(f"{TENANT} as wallet:{WALLET.address}")
    await expect(page.locator("#status")).to_have_text(re.compile("live"), timeout=WAIT_MS)
    assert await status_of(page, "/api/v1/runs") == 200
    # Read and approve, never write: a wallet session posts no goal (403, with CSRF).
    csrf = await page.locator("meta[name=csrf-token]").get_attribute("content")
    posted = await page.evaluate(
        "t => fetch('/api/v1/goals', {method: 'POST', headers: {'Content-Type':"
        " 'application/json', 'X-CSRF-Token': t}, body: JSON.stringify({goal: 'say hi'})})"
        ".then(r => r.status)",
        csrf,
    )
    assert posted == 403

    await page.goto("/dashboard/admin")
    await expect(page.locator("#tier .tier-name")).to_have_text("free", timeout=WAIT_MS)
    await expect(page.locator("#tier")).to_contain_text("from default")
    row = page.locator('#entitlements tr[data-entitlement="max_plan_steps"]')
    await expect(row).to_contain_text("5")
    await expect(page.locator("#tier-sources tbody tr")).to_have_count(1)
    assert await watch.csp(page) == []

    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.delete(
            f"/api/v1/auth/wallet/{WALLET.address}?reason=test",
            headers={"Authorization": f"Bearer {admin.key}"},
        )
        assert r.status_code == 200, r.text
    for _ in range(60):  # the gateway folds the unlink; sessions recheck within 2 s
        if await status_of(page, "/api/v1/runs") == 401:
            break
        await asyncio.sleep(0.5)
    assert await status_of(page, "/api/v1/runs") == 401
    await page.goto("/dashboard/runs")
    await expect(page).to_have_url(re.compile(r"/dashboard/signin\?next="))
    assert [e for e in watch.errors if not PROVOKED.search(e)] == []
    await page.context.close()


async def test_an_unlinked_wallet_is_refused_clearly(
    browser: Browser,  # noqa: F811
    api: str,
) -> None:
    watch = Watch()
    page = await with_wallet(browser, api, STRANGER, watch)
    await page.goto("/dashboard/signin")
    await page.get_by_role("button", name="Sign in with wallet").click()
    await expect(page.locator("#wallet-status")).to_have_text(
        "Wallet sign-in refused: this wallet is not linked to any tenant"
    )
    assert await status_of(page, "/api/v1/runs") == 401
    assert [e for e in watch.errors if not PROVOKED.search(e)] == []
    assert await watch.csp(page) == []
    await page.context.close()


async def test_a_wallet_linked_to_two_tenants_picks_one(
    browser: Browser,  # noqa: F811
    api: str,
    admin: CliKey,
    env: dict[str, str],
) -> None:
    other = cli_key(env, OTHER_TENANT, "admin")
    await link(api, admin.key, SHARED)
    await link(api, other.key, SHARED)
    watch = Watch()
    page = await with_wallet(browser, api, SHARED, watch)
    await page.goto("/dashboard/signin")
    choice = page.get_by_label("Tenant")
    for _ in range(60):  # until both links are folded: then the page offers the choice
        await page.get_by_role("button", name="Sign in with wallet").click()
        await expect(page.locator("#wallet-status")).to_contain_text("refused")
        if await choice.is_visible() and await choice.locator("option").count() == 2:
            break
        await asyncio.sleep(0.5)
    await choice.select_option(OTHER_TENANT)
    await page.get_by_role("button", name="Sign in with wallet").click()
    await expect(page).to_have_url(re.compile(r"^[^?]*/dashboard/runs$"))
    await expect(page.locator(".tenant")).to_contain_text(f"{OTHER_TENANT} as wallet:")
    assert [e for e in watch.errors if not PROVOKED.search(e)] == []
    await page.context.close()


async def test_signin_refusals_are_problem_details_with_an_audit_fact(
    api: str, admin: CliKey, env: dict[str, str]
) -> None:
    signin, nonce = "/dashboard/signin/wallet", "/dashboard/signin/wallet/nonce"
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        n = (await c.post(nonce, json={"address": STRANGER.address.lower()})).json()
        assert n["address"] == STRANGER.address  # EIP-55, for a page that cannot hash
        # A valid proof of a wallet linked nowhere: refused, and its nonce is spent.
        body = signed(n, STRANGER)
        r = await c.post(signin, json=body)
        assert (r.status_code, r.json()["type"]) == (
            403,
            "https://omnihub.dev/problems/wallet-not-linked",
        )
        assert r.headers["content-type"] == "application/problem+json"
        replay = await c.post(signin, json=body)
        assert (replay.status_code, replay.json()["reason"]) == (401, "replayed")
        # Signed by another key than the address it names.
        n = (await c.post(nonce)).json()
        r = await c.post(signin, json=signed(n, STRANGER, signer=WALLET))
        assert (r.status_code, r.json()["reason"]) == (401, "wrong_signer")
        # A nonce issued to link a wallet does not sign anybody in.
        link_nonce = (
            await c.post(
                "/api/v1/auth/wallet/nonce", headers={"Authorization": f"Bearer {admin.key}"}
            )
        ).json()
        r = await c.post(signin, json=signed(link_nonce, STRANGER))
        assert (r.status_code, r.json()["reason"]) == (401, "nonce_unknown")
        # Another site's page cannot post a sign-in (login CSRF).
        r = await c.post(nonce, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert "set-cookie" not in r.headers
    for _ in range(30):
        reasons = {
            e.details.get("reason")
            for e in await control_events(env)
            if isinstance(e, AuditFactObserved)
            and e.action == "wallet.signin"
            and e.outcome == "failure"
        }
        if {"not_linked", "replayed", "wrong_signer", "nonce_unknown"} <= reasons:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"audit facts of the refusals: {reasons}")


async def test_a_wallet_approves_as_itself(
    browser: Browser,  # noqa: F811
    api: str,
    admin: CliKey,
) -> None:
    """Approvers are identities: the decision names the wallet, and the run goes on."""
    await link(api, admin.key, APPROVER)
    watch = Watch()
    page = await with_wallet(browser, api, APPROVER, watch)
    await sign_in(page)
    auth = {"Authorization": f"Bearer {admin.key}"}
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post(
            "/api/v1/goals", headers=auth, json={"goal": "say hi then approve the payment"}
        )
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        await decide(page, run_id, "Approve", "signed by my wallet")
        for _ in range(120):
            items = (await c.get("/api/v1/approvals?status=any", headers=auth)).json()["items"]
            mine = [a for a in items if a["run_id"] == run_id]
            run = (await c.get(f"/api/v1/runs/{run_id}", headers=auth)).json()
            if mine and mine[0]["status"] == "granted" and run.get("status") == "completed":
                break
            await asyncio.sleep(0.5)
    assert mine[0]["decided_by"] == f"wallet:{APPROVER.address}"
    assert run["status"] == "completed"
    assert [e for e in watch.errors if not PROVOKED.search(e)] == []
    await page.context.close()
