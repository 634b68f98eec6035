"""Delivering one message to one channel: a signed webhook, an email, a Web Push."""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from domain.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, backoff, body_of, sign


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended."""

    delivered: bool
    attempts: int
    detail: str = ""


async def with_retries(send: Any, attempts: int, base_s: float) -> Outcome:
    """``await send()`` until it returns, at most ``attempts`` times, backing off."""
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            await send()
            return Outcome(True, attempt)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:500]
            if attempt < attempts:
                await asyncio.sleep(backoff(attempt, base_s))
    return Outcome(False, attempts, detail)


async def webhook(client: httpx.AsyncClient, url: str, secret: str, msg: dict[str, Any]) -> None:
    """POST ``msg`` signed with ``secret`` and the time; any non-2xx answer raises."""
    body = body_of(msg)
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }
    response = await client.post(url, content=body, headers=headers)
    response.raise_for_status()


async def email(host: str, port: int, sender: str, to: str, msg: dict[str, Any]) -> None:
    """Send ``msg`` as a plain-text email over SMTP (in a thread: smtplib blocks)."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, msg["title"]
    mail.set_content(
        f"Run {msg['run_id']} waits for your decision on step {msg['step_id']} "
        f"({msg['tool']}, risk {msg['risk']:.2f}: {'; '.join(msg['reasons'])}).\n\n"
        f"Decide here: {msg['url']}\n\nIt expires at {msg['expires_at']}.\n"
    )

    def send() -> None:
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(mail)

    await asyncio.to_thread(send)


async def webpush(
    subscription_json: str, vapid_pem: str, subject: str, msg: dict[str, Any]
) -> None:
    """Send ``msg`` to a browser's push subscription: encrypted for it (aes128gcm) and
    signed with the VAPID key, so the push service knows who sends."""
    import requests
    from py_vapid import Vapid02
    from pywebpush import webpush as push  # lazy: only tenants with push channels need it

    data = json.dumps({"title": msg["title"], "body": f"Run {msg['run_id']}", "url": msg["url"]})
    vapid = Vapid02.from_pem(vapid_pem.encode())

    def send() -> None:
        with requests.Session() as session:
            session.trust_env = False  # the push service is named by the subscription
            push(
                subscription_info=json.loads(subscription_json),
                data=data,
                vapid_private_key=vapid,
                vapid_claims={"sub": subject},
                timeout=10,
                ttl=3600,
                requests_session=session,
            )

    await asyncio.to_thread(send)


def vapid_public_key(vapid_pem: str) -> str:
    """The browser's ``applicationServerKey``: the raw public point, base64url."""
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from py_vapid import Vapid02

    point = Vapid02.from_pem(vapid_pem.encode()).public_key.public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()
