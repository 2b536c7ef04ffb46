"""An organisation's processing settings, under ``/api/v1/organisation/settings``.

Every member reads them; only the organisation's admins change them. Today the one setting is
the rating guideline a job's report leads with when its upload names none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common.client_models import ClientModel
from chromaline.common.events.contracts import DEFAULT_RATING_GUIDELINE, JobOptions, RatingGuideline
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway.access import CurrentPrincipal, authorize
from chromaline.gateway.models import OrganisationSettings


class SettingsUpdate(ClientModel):
    guideline: RatingGuideline


def _view(row: OrganisationSettings | None) -> dict[str, Any]:
    if row is None:
        return {"guideline": DEFAULT_RATING_GUIDELINE, "changed_at": None, "changed_by": None}
    return {
        "guideline": row.guideline,
        "changed_at": row.changed_at.isoformat(),
        "changed_by": row.changed_by,
    }


async def guideline_of(session: AsyncSession, organisation_id: str | None) -> RatingGuideline:
    """The organisation's rating guideline (the default when it chose none)."""
    row = None if organisation_id is None else await session.get(OrganisationSettings, organisation_id)
    return DEFAULT_RATING_GUIDELINE if row is None else SettingsUpdate(guideline=row.guideline).guideline


async def with_organisation_guideline(
    session: AsyncSession, organisation_id: str | None, options: JobOptions
) -> JobOptions:
    """``options`` with the organisation's guideline filled in where the upload named none."""
    if options.guideline is not None:
        return options
    return options.model_copy(update={"guideline": await guideline_of(session, organisation_id)})


def build_organisation_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.get("/organisation/settings", summary="Your organisation's processing settings")
    async def get_settings(principal: CurrentPrincipal) -> dict[str, Any]:
        async with runtime.session() as session:
            return _view(await session.get(OrganisationSettings, principal.organisation_id))

    @router.put("/organisation/settings", summary="Change your organisation's processing settings (admins)")
    async def put_settings(body: SettingsUpdate, principal: CurrentPrincipal) -> dict[str, Any]:
        change = {
            "guideline": body.guideline,
            "changed_at": datetime.now(UTC),
            "changed_by": principal.user_id,
        }
        async with runtime.session() as session, session.begin():
            row = (
                await session.execute(
                    insert(OrganisationSettings)
                    .values(organisation_id=principal.organisation_id, **change)
                    .on_conflict_do_update(index_elements=[OrganisationSettings.organisation_id], set_=change)
                    .returning(OrganisationSettings)
                )
            ).scalar_one()
            view = _view(row)
        return view

    return router
