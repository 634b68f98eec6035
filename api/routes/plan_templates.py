"""Sharing a tenant's learned plan templates with other tenants.

``PUT /plan-templates/sharing`` appends ``plan_template_shared``: the tenants (or ``*``,
every tenant) that may reuse the caller's plan for a template (the list replaces the
previous one; the plan-cache projector folds it). Sharing needs the tier's
``plan_template_sharing`` (402 naming it, audited); an empty list, which stops sharing,
is always allowed.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import StateDep
from api.security.deps import require, security_of, tier_of
from api.security.principal import Principal
from api.security.tiers import refuse
from api.text import Text
from domain import ids
from domain.events import PlanTemplateShared
from domain.scopes import TENANT_PATTERN
from domain.tier_rules import least_tier

router = APIRouter(tags=["plan templates"])

TemplateSharer = Annotated[Principal, require("templates:share")]
RESOURCE = "PUT /api/v1/plan-templates/sharing"
Grantee = Annotated[str, Field(pattern=TENANT_PATTERN.replace("^", "^(?:\\*|").replace("$", ")$"))]


class Sharing(BaseModel):
    """Who may reuse the caller's plan for ``template``."""

    model_config = ConfigDict(extra="forbid")

    template: Text = Field(min_length=1, max_length=2000, description="As the cache names it.")
    shared_with: list[Grantee] = Field(
        max_length=100, description="Tenant ids, or '*' for every tenant; [] stops sharing."
    )


class SharingOut(BaseModel):
    template: str
    shared_with: list[str]
    event_id: str


@router.put("/plan-templates/sharing", status_code=status.HTTP_202_ACCEPTED)
async def share(body: Sharing, p: TemplateSharer, state: StateDep) -> SharingOut:
    """Set which tenants may reuse this tenant's plan for a template."""
    if body.shared_with:
        tier = await tier_of(state, p)
        if not tier.entitlements["plan_template_sharing"].value:
            raise await refuse(
                security_of(state).audit,
                p,
                tier,
                "plan_template_sharing",
                f"the {tier.tier} tier does not share plan templates",
                resource=RESOURCE,
                extra={"upgrade_to": least_tier(lambda t: t.plan_template_sharing)},
            )
    event = PlanTemplateShared(
        envelope=ids.envelope(
            PlanTemplateShared,
            run_id=f"plan-cache-{p.tenant_id}",  # one partition: the tenant's choices in order
            tenant_id=p.tenant_id,
            actor=p.actor,
            correlation_id=str(uuid.uuid4()),
            discriminator=(str(uuid.uuid4()),),
        ),
        template=body.template,
        shared_with=tuple(body.shared_with),
    )
    await state.appender.append(event)  # LogUnavailable: 503, api.problems
    return SharingOut(
        template=body.template, shared_with=list(body.shared_with), event_id=event.envelope.event_id
    )
