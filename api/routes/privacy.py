"""Erasure of a data subject's personal data in the caller's tenant (crypto-shredding).

The route destroys the subject's data key, appends ``subject_erased`` for each run it
sealed and an audit fact naming the caller (:mod:`projections.shredding`); the read
models then show the fields as ``[erased]``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import StateDep
from api.security.deps import require
from api.security.principal import Principal
from api.text import Text
from domain.privacy import ERASED
from projections.keyring import PgKeyStore
from projections.shredding import erase_subject

router = APIRouter(tags=["admin"])

TenantAdmin = Annotated[Principal, require("admin")]


class ErasureIn(BaseModel):
    """The data subject, as named in goal requests (context ``data_subject``)."""

    model_config = ConfigDict(extra="forbid")

    subject: Text = Field(min_length=1, max_length=500)


class ErasureOut(BaseModel):
    keys_destroyed: int
    runs_erased: int
    marker: str = Field(default=ERASED, description="What the erased fields read as from now on.")


@router.post("/admin/privacy/erasures", response_model=ErasureOut, status_code=200)
async def erase(body: ErasureIn, state: StateDep, principal: TenantAdmin) -> ErasureOut:
    """Erase a data subject's personal data in the caller's tenant (irreversible)."""
    store = PgKeyStore(state.settings)
    try:
        erased = await erase_subject(
            store,
            state.appender,
            tenant_id=principal.tenant_id,
            subject=body.subject,
            requested_by=principal.actor,
        )
    finally:
        await store.close()
    if state.privacy is not None:  # this process seals no more with those keys
        for key in erased:
            state.privacy.forget(key.key_id)
    return ErasureOut(keys_destroyed=len(erased), runs_erased=sum(len(e.run_ids) for e in erased))
