"""The notifier against real servers: channels set through the API, an approval request
appended to Kafka (twice, as a redelivery would), a local webhook receiver and a local
SMTP server (aiosmtpd) told once each, a dead webhook dead-lettered after its retries."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import http_ece
import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid02

from domain.events import ApproverNotified
from domain.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from infra.launch import free_port, running_api
from infra.stack import StackConfig
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.e2e.test_projection_api import settings_of
from tests.integration.test_projection_store import append, story
from tests.saga_support import omnihub_process

Received = list[tuple[str, dict[str, str], bytes]]


@pytest.fixture(scope="module")
def webhooks() -> Iterator[tuple[str, Received]]:
    """A local receiver: ``/ok`` answers 204, ``/down`` 503; every request is kept."""
    got: Received = []

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response({"/ok": 204, "/push": 201}.get(self.path, 503))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[int, Mailbox]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


class Browser:
    """A browser's push subscription: its key pair and auth secret, as a page would make."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        point = self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        self.subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": b64(point), "auth": b64(self.auth)},
        }

    def read(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        out: dict[str, Any] = json.loads(plain)
        return out


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_claims(authorization: str) -> dict[str, Any]:
    """The claims of a ``vapid t=<jwt>, k=<key>`` header, after checking its signature."""
    parts = dict(p.strip().split("=", 1) for p in authorization.removeprefix("vapid ").split(","))
    head, claims, signature = parts["t"].split(".")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(parts["k"]))
    raw = unb64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    out: dict[str, Any] = json.loads(unb64(claims))
    return out


@pytest.fixture(scope="module")
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


@pytest.fixture(scope="module")
def env(stack: StackConfig, mailbox: tuple[int, Mailbox], vapid: Vapid02) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_VAPID_PRIVATE_KEY=vapid.private_pem().decode(),
        OMNIHUB_VAPID_SUBJECT="mailto:ops@acme.example",
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_SMTP_PORT=str(mailbox[0]),
        OMNIHUB_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        OMNIHUB_NOTIFY_ATTEMPTS="3",
        OMNIHUB_NOTIFY_BACKOFF_S="0.1",
        OMNIHUB_DASHBOARD_URL="http://dash.example",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("notifier")
    with (
        running_processor(env, logs),
        omnihub_process(env, logs / "notifier.log", "notifier", "run"),
        running_api(env, logs) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def key(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "acme", "admin")


async def until(check: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_an_approval_request_reaches_every_channel_once(
    api: str,
    key: CliKey,
    env: dict[str, str],
    webhooks: tuple[str, Received],
    mailbox: tuple[int, Mailbox],
) -> None:
    base, got = webhooks
    browser = Browser(f"{base}/push")
    headers = {"Authorization": f"Bearer {key.key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        vapid_key = (await client.get("/api/v1/notifications/vapid")).json()["public_key"]
        added = {}
        for kind, target in (
            ("webhook", f"{base}/ok"),
            ("webhook", f"{base}/down"),
            ("webhook", "http://169.254.169.254/latest/meta-data"),  # never called
            ("email", "approver@acme.example"),
            ("webpush", json.dumps(browser.subscription)),
        ):
            r = await client.post(
                "/api/v1/notifications/channels", json={"kind": kind, "target": target}
            )
            assert r.status_code == 201, r.text
            added[target] = r.json()
        listed = (await client.get("/api/v1/notifications/channels")).json()["items"]
        assert {c["target"] for c in listed} == set(added)
        bad = await client.post(
            "/api/v1/notifications/channels", json={"kind": "email", "target": "not an address"}
        )
        assert bad.status_code == 422

        run_id = f"n-{uuid.uuid4().hex[:8]}"
        events = story(run_id, "acme", 2)[:5]  # up to approval_requested
        requested = events[-1]
        await append(settings_of(env), events)
        await append(settings_of(env), [requested])  # redelivered: the same fact again

        await until(lambda: len([g for g in got if g[0] == "/down"]) == 3, "the retries")
        await until(lambda: mailbox[1].messages, "the email")
        await until(lambda: [g for g in got if g[0] == "/push"], "the push")
        await asyncio.sleep(2)  # time for a second notification, were there to be one
        ok = [g for g in got if g[0] == "/ok"]
        assert len(ok) == 1 and len(mailbox[1].messages) == 1

        _, hdrs, body = ok[0]
        secret = added[f"{base}/ok"]["secret"]
        ts = int(hdrs[TIMESTAMP_HEADER.lower()])
        assert verify(secret, ts, body, hdrs[SIGNATURE_HEADER.lower()], now=int(time.time()))
        assert not verify(secret, ts, body, hdrs[SIGNATURE_HEADER.lower()], now=ts + 3600)  # replay
        assert not verify("other", ts, body, hdrs[SIGNATURE_HEADER.lower()], now=ts)
        msg = json.loads(body)
        approval = requested.approval_id  # type: ignore[attr-defined]
        assert msg["url"] == f"http://dash.example/dashboard/approvals?id={approval}"
        assert (msg["run_id"], msg["approval_id"]) == (run_id, approval)
        rcpt, mail = mailbox[1].messages[0]
        assert rcpt == ["approver@acme.example"] and msg["url"] in mail

        # The push: signed with the VAPID key the dashboard subscribes with, readable only
        # with the subscription's own key.
        pushes = [g for g in got if g[0] == "/push"]
        assert len(pushes) == 1
        _, push_headers, push_body = pushes[0]
        claims = vapid_claims(push_headers["authorization"])
        assert claims["aud"] == base and claims["sub"] == "mailto:ops@acme.example"
        assert push_headers["authorization"].rstrip().endswith(f"k={vapid_key}")
        assert push_headers["content-encoding"] == "aes128gcm"
        assert browser.read(push_body)["url"] == msg["url"]

        async def letters() -> list[dict[str, Any]]:
            ops = (await client.get("/api/v1/operations")).json()
            return [d for d in ops["dead_letters"] if d["reason"] == "notify_failed:webhook"]

        deadline = time.monotonic() + 30
        while len(found := await letters()) < 2:
            assert time.monotonic() < deadline, "no dead letter for the dead webhook"
            await asyncio.sleep(0.5)
        details = sorted(d["detail"] for d in found)
        assert len(found) == 2 and all(d["consumer"] == "notifier" for d in found)
        assert "503" in details[0] and "non-public address 169.254.169.254" in details[1]

    # Each delivery, and the giving up, is an event in the log.
    settings = settings_of(env)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    recorded = [
        rec.event
        async for rec in read_log(
            settings.kafka_bootstrap, codec, [topic_name(settings, Topic.CONTROL)]
        )
        if isinstance(rec.event, ApproverNotified) and rec.event.approval_id == approval
    ]
    assert sorted((e.kind, e.outcome, e.attempts) for e in recorded) == [
        ("email", "delivered", 1),
        ("webhook", "dead_lettered", 3),
        ("webhook", "dead_lettered", 3),
        ("webhook", "delivered", 1),
        ("webpush", "delivered", 1),
    ]
