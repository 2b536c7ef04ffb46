"""Custom chart definitions, under ``/api/v1/charts``: an organisation's own charts.

A definition is a layout (rows × columns, gap and margin as shares of the patch side) and the
patches' reference values in a CGATS.17 file (LAB or XYZ, with its illuminant). The file is read
with :mod:`chromaline.common.cgats` and the whole checked with the ``CustomChart`` contract before
anything is stored; an upload names a chart by id (``chart_id``) and the gateway puts its
definition into the job's options, so the workers need nothing but the event. Like profiles,
every member reads them and members (or admin keys) create and delete them; another
organisation's chart answers 404. Creating and deleting one writes ``chart.created`` or
``chart.deleted`` to the outbox in the same transaction, and the auth service audits it.
"""

from __future__ import annotations

import asyncio
import posixpath
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chromaline.common import cgats
from chromaline.common.events.contracts import (
    CUSTOM_CHART_MAX_SIDE,
    MIN_DISTINCT_REFERENCE_COLOURS,
    ChartCreated,
    ChartDeleted,
    CustomChart,
)
from chromaline.common.events.envelope import make_envelope
from chromaline.common.logging import get_logger
from chromaline.common.outbox import add_to_outbox
from chromaline.common.problems import ApiError
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.visible_text import hides_characters
from chromaline.gateway.access import CurrentPrincipal, Principal, authorize
from chromaline.gateway.filenames import content_disposition, display_name
from chromaline.gateway.jobs import PRODUCER
from chromaline.gateway.models import ChartRecord
from chromaline.gateway.organisation_limits import refuse_past_limit

log = get_logger(__name__)

DEFAULT_GAP = 0.1
DEFAULT_MARGIN = 0.5
"""The CLI's defaults for ``--gap`` and ``--margin``."""
MAX_CHARTS_PER_ORGANISATION = 50
"""Charts are listed whole and each holds up to 2000 patches, so an organisation keeps this many."""


def chart_summary(definition: dict[str, Any]) -> dict[str, Any]:
    """What a job's options show of the custom chart they carry: the chart, not its values."""
    return {
        "chart_id": definition.get("chart_id"),
        "name": definition.get("name"),
        "rows": definition.get("rows"),
        "columns": definition.get("columns"),
        "patch_count": len(definition.get("values", [])),
    }


def chart_view(record: ChartRecord, *, with_values: bool = False) -> dict[str, Any]:
    definition = CustomChart.model_validate(record.definition)
    view: dict[str, Any] = {
        "id": str(record.id),
        "name": record.name,
        "rows": definition.rows,
        "columns": definition.columns,
        "gap": definition.gap,
        "margin": definition.margin,
        "patch_count": len(definition.values),
        "colour_space": definition.colour_space,
        "illuminant": definition.illuminant,
        "filename": record.filename,
        "created_by": record.created_by,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "files": {"cgats": f"/api/v1/charts/{record.id}/cgats"},
    }
    if with_values:
        view["patches"] = [
            {"sample_id": sample_id, "value": list(value)}
            for sample_id, value in zip(definition.sample_ids, definition.values, strict=True)
        ]
    return view


def checked_definition(
    text: str, *, chart_id: uuid.UUID, name: str, rows: int, columns: int, gap: float, margin: float
) -> CustomChart:
    """The chart ``text`` and the layout describe; 422 with a code saying what is wrong otherwise."""
    try:
        table = cgats.parse_cgats(text)
    except cgats.CgatsError as error:
        raise ApiError(422, "invalid_cgats", str(error), line=error.line) from None
    if rows * columns != table.patch_count:
        raise ApiError(
            422,
            "chart_patch_count_mismatch",
            f"{rows}×{columns} is {rows * columns} patches but the file has {table.patch_count} values",
            patch_count=table.patch_count,
        )
    distinct = len(set(table.values))
    if distinct < MIN_DISTINCT_REFERENCE_COLOURS:
        raise ApiError(
            422,
            "chart_colours_too_few",
            f"the file's {table.patch_count} reference values hold {distinct} different colour(s); a chart "
            f"needs at least {MIN_DISTINCT_REFERENCE_COLOURS} to be found in a photo and fitted",
        )
    try:
        return CustomChart.from_reference(
            table, name=name, rows=rows, columns=columns, gap=gap, margin=margin, chart_id=chart_id
        )
    except ValidationError as error:
        raise ApiError(
            422,
            "invalid_chart_layout",
            error.errors()[0]["msg"],
            errors=[{"loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()],
        ) from None


async def load_chart(runtime: ServiceRuntime, chart_id: uuid.UUID, organisation_id: str) -> ChartRecord:
    """The organisation's chart; 404 for an unknown id or another organisation's chart."""
    async with runtime.session() as session:
        record = await session.get(ChartRecord, chart_id)
    if record is None or record.organisation_id != organisation_id:
        raise ApiError(404, "chart_not_found", f"no chart {chart_id}")
    return record


async def custom_chart_options(
    runtime: ServiceRuntime, chart_id: uuid.UUID, organisation_id: str, chart_type: str
) -> dict[str, Any]:
    """The job options that name ``chart_id``'s chart (``chart_type`` must be auto or custom)."""
    if chart_type not in ("auto", "custom"):
        raise ApiError(
            422, "invalid_options", f"chart_id names a custom chart; chart_type {chart_type!r} names another"
        )
    record = await load_chart(runtime, chart_id, organisation_id)
    return {"chart_type": "custom", "custom_chart": record.definition}


def chart_change(record: ChartRecord, principal: Principal) -> dict[str, Any]:
    """What ``chart.created`` and ``chart.deleted`` say of the chart and of who changed it."""
    definition = CustomChart.model_validate(record.definition)
    return {
        "chart_id": record.id,
        "organisation_id": record.organisation_id,
        "name": record.name,
        "rows": definition.rows,
        "columns": definition.columns,
        "patch_count": len(definition.values),
        "actor_id": uuid.UUID(principal.user_id),
        "api_key_id": uuid.UUID(principal.api_key_id) if principal.api_key_id else None,
    }


async def announce(session: AsyncSession, event: ChartCreated | ChartDeleted) -> None:
    """Write the event to the outbox in the caller's transaction; auth writes it into the audit log."""
    await add_to_outbox(session, make_envelope(PRODUCER, str(event.chart_id), event))


def build_charts_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.post("/charts", status_code=201, summary="Define a custom chart: its layout and a CGATS.17 file")
    async def create_chart(
        principal: CurrentPrincipal,
        file: Annotated[UploadFile, File(description="CGATS.17 text: SAMPLE_ID and LAB_* or XYZ_* fields")],
        name: Annotated[str, Form(min_length=1, max_length=100)],
        rows: Annotated[int, Form(ge=1, le=CUSTOM_CHART_MAX_SIDE)],
        columns: Annotated[int, Form(ge=1, le=CUSTOM_CHART_MAX_SIDE)],
        gap: Annotated[float, Form(description="Between patches, share of the patch side")] = DEFAULT_GAP,
        margin: Annotated[
            float, Form(description="Around the grid, share of the patch side")
        ] = DEFAULT_MARGIN,
    ) -> dict[str, Any]:
        data = await file.read(cgats.MAX_BYTES + 1)
        if len(data) > cgats.MAX_BYTES:
            raise ApiError(
                413, "chart_file_too_large", f"a chart file is at most {cgats.MAX_BYTES // 1024} KiB"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(422, "invalid_cgats", "the file is not UTF-8 text", line=None) from None
        if hides_characters(name):
            raise ApiError(
                422, "invalid_chart_name", "a chart name may not hold control or invisible characters"
            )
        chart_id = uuid.uuid4()

        def check() -> CustomChart:
            return checked_definition(
                text, chart_id=chart_id, name=name, rows=rows, columns=columns, gap=gap, margin=margin
            )

        # reading up to 2000 patches takes tens of milliseconds: off the event loop
        definition = await asyncio.to_thread(check)
        record = ChartRecord(
            id=chart_id,
            organisation_id=principal.organisation_id,
            name=definition.name,
            definition=definition.model_dump(mode="json"),
            filename=display_name(
                posixpath.basename((file.filename or "").replace("\\", "/")) or "chart.txt"
            ),
            source=text,
            created_by=principal.user_id,
        )
        async with runtime.session() as session, session.begin():
            await refuse_past_limit(
                session,
                ChartRecord.organisation_id,
                principal.organisation_id,
                limit=MAX_CHARTS_PER_ORGANISATION,
                things="charts",
            )
            session.add(record)
            await session.flush()
            await session.refresh(record)
            await announce(
                session, ChartCreated(**chart_change(record, principal), created_at=record.created_at)
            )
            view = chart_view(record)
        log.info("chart.created", chart_id=str(chart_id), organisation_id=principal.organisation_id)
        return view

    @router.get("/charts", summary="Your organisation's custom charts, newest first")
    async def list_charts(principal: CurrentPrincipal) -> dict[str, Any]:
        async with runtime.session() as session:
            rows = (
                (
                    await session.execute(
                        select(ChartRecord)
                        .where(ChartRecord.organisation_id == principal.organisation_id)
                        .order_by(ChartRecord.created_at.desc(), ChartRecord.id)
                    )
                )
                .scalars()
                .all()
            )
        return {"items": [chart_view(record) for record in rows]}

    @router.get("/charts/{chart_id}", summary="One custom chart: its layout and reference values")
    async def get_chart(chart_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, Any]:
        return chart_view(await load_chart(runtime, chart_id, principal.organisation_id), with_values=True)

    @router.get("/charts/{chart_id}/cgats", summary="Download the CGATS.17 file a chart was defined with")
    async def chart_file(chart_id: uuid.UUID, principal: CurrentPrincipal) -> Response:
        record = await load_chart(runtime, chart_id, principal.organisation_id)
        return Response(
            record.source.encode("utf-8"),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": content_disposition(record.filename)},
        )

    @router.delete("/charts/{chart_id}", status_code=204, summary="Delete a custom chart")
    async def delete_chart(chart_id: uuid.UUID, principal: CurrentPrincipal) -> None:
        """Jobs already uploaded with the chart carry its definition and finish unaffected."""
        async with runtime.session() as session, session.begin():
            record = await session.get(ChartRecord, chart_id, with_for_update=True)
            if record is None or record.organisation_id != principal.organisation_id:
                raise ApiError(404, "chart_not_found", f"no chart {chart_id}")
            deleted = ChartDeleted(**chart_change(record, principal), deleted_at=datetime.now(UTC))
            await session.delete(record)
            await announce(session, deleted)
        log.info("chart.deleted", chart_id=str(chart_id), organisation_id=principal.organisation_id)

    return router
