"""The audit log for auditors: a tenant's chain, or the platform chain every tenant may
read, filtered and cursor-paginated from the read model, each page with the
verification of the range of the chain it spans (``domain.audit_range``)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Query
from fastapi.routing import APIRouter
from pydantic import BaseModel, Field

from api.deps import StateDep
from api.problems import Problem
from api.routes.runs import read_models
from api.security.deps import require
from api.security.principal import Principal
from api.text import Text
from domain.audit_range import RangeVerification, verify_range
from domain.audit_retention import PLATFORM
from domain.events import AuditRecorded
from domain.privacy import sealed_strings
from projections import audit_read
from streams.privacy import Privacy

router = APIRouter(tags=["audit"])
AuditReader = Annotated[Principal, require("audit:read")]
Chain = Literal["tenant", "platform"]
Filter = Annotated[Text | None, Query(max_length=200)]
MAX_VERIFIED = 10_000
"""At most this many sequences, ending at the page's newest record, are verified."""


class Broken(BaseModel):
    sequence: int
    reason: str = Field(description="sequence, prev_hash, hash or anchor.")
    expected: str
    actual: str


class Verification(BaseModel):
    """The chain recomputed over the contiguous range of sequences the page spans (at
    most its newest 10,000)."""

    ok: bool
    from_sequence: int | None
    to_sequence: int | None
    records: int = Field(description="Records verified (the page's filters do not apply).")
    anchor: str = Field(
        description="What the range's first record links to: genesis, previous (the kept"
        " record before it), checkpoint (a retention checkpoint), none, or empty."
    )
    head_hash: str | None
    broken: Broken | None
    erased: int = Field(
        0, description="Records an erasure overwrote here: their links checked, not content."
    )


class AuditPage(BaseModel):
    chain: Chain
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page.")
    verification: Verification


def _encode(chain: str, before: int) -> str:
    raw = json.dumps([chain, before]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str | None, chain: str) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        owner, before = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(400, "bad-cursor", "the cursor is not one this API returned") from exc
    if owner != chain or not isinstance(before, int) or not 0 < before < 2**63:
        raise Problem(400, "bad-cursor", "the cursor is not one this API returned")
    return before


def _reader(p: Principal, chain: str) -> Principal:
    """Who reads: the caller, or for the platform chain the caller seeing the platform's
    rows only (row-level security keeps every tenant's own rows out of sight)."""
    return p if chain == p.tenant_id else replace(p, tenant_id=chain)


async def _verify(
    conn: asyncpg.Connection, chain: str, items: list[dict[str, Any]]
) -> Verification:
    if not items:
        return _out(verify_range(chain, [], previous_hash=None, checkpoints={}))
    hi = items[0]["sequence"]
    # A filtered page may span a long stretch of the chain: verify its newest part only.
    lo = max(items[-1]["sequence"], hi - MAX_VERIFIED + 1)
    records = await audit_read.chain_range(conn, chain, lo, hi)
    result = verify_range(
        chain,
        records,
        previous_hash=await audit_read.hash_at(conn, chain, lo - 1),
        checkpoints=await audit_read.checkpoints(conn, chain),
    )
    return _out(result)


async def _opened(privacy: Privacy | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with the sealed values of their details opened, or read as erased once
    the key is gone. The read model keeps them sealed, as the chain hashed them."""
    if privacy is None or not any(True for i in items for _ in sealed_strings(i["details"])):
        return items
    opened = await privacy.open([audit_read.record_of(i) for i in items])
    records = [r for r in opened if isinstance(r, AuditRecorded)]
    return [{**i, "details": dict(r.details)} for i, r in zip(items, records, strict=True)]


def _out(v: RangeVerification) -> Verification:
    b = v.broken
    return Verification(
        ok=v.ok,
        from_sequence=v.from_sequence,
        to_sequence=v.to_sequence,
        records=v.records,
        anchor=v.anchor,
        head_hash=v.head.hash if v.head else None,
        erased=v.erased,
        broken=None if b is None else Broken(sequence=b.sequence, reason=b.reason,
                                             expected=b.expected, actual=b.actual),
    )  # fmt: skip


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    state: StateDep,
    p: AuditReader,
    chain: Annotated[Chain, Query(description="tenant (yours) or platform")] = "tenant",
    category: Filter = None,
    action: Filter = None,
    outcome: Filter = None,
    subject: Filter = None,
    since: Annotated[datetime | None, Query(description="occurred at or after")] = None,
    until: Annotated[datetime | None, Query(description="occurred before")] = None,
    cursor: Annotated[Text | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """An audit chain newest first, filtered, with the page's range verified."""
    owner = PLATFORM if chain == "platform" else p.tenant_id
    before = _decode(cursor, owner)
    f = audit_read.AuditFilter(category, action, outcome, subject, since, until)
    async with read_models(state, _reader(p, owner)) as conn:
        items, more = await audit_read.page(conn, owner, f, before, limit)
        verification = await _verify(conn, owner, items)
    return AuditPage(
        chain=chain,
        items=await _opened(state.privacy, items),
        next_cursor=None if more is None else _encode(owner, more),
        verification=verification,
    )
