"""A worker's runtime for tests that call its handlers themselves, as messages from a named
publisher would reach them."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import BaseModel

from chromaline.common.bus.base import delivered_by
from chromaline.common.events.envelope import make_envelope
from chromaline.common.runtime import RuntimeHandler, ServiceRuntime, ServiceSpec
from chromaline.common.settings import ServiceSettings


@asynccontextmanager
async def started_worker(
    spec: ServiceSpec,
    settings_type: type[ServiceSettings],
    *,
    database_url: str,
    schema: str,
    blobs: Path,
    partners: str = "",
) -> AsyncIterator[ServiceRuntime]:
    """The worker on ``schema`` of ``database_url``, its blobs in ``blobs``, consuming nothing."""
    settings = settings_type(
        database_url=database_url,
        bus_url=f"memory://{spec.name}-{uuid.uuid4().hex[:8]}",
        blob_url=f"file://{blobs}",
        partners=partners,
    )
    runtime = ServiceRuntime(dataclasses.replace(spec, name=schema), settings)
    await runtime.start(consume=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def deliver(
    handler: RuntimeHandler, runtime: ServiceRuntime, subject: uuid.UUID, event: BaseModel, publisher: str
) -> None:
    """Run ``handler`` on ``event`` as a message ``publisher`` published about ``subject``."""
    with delivered_by(publisher):
        await handler(runtime, make_envelope("tests", str(subject), event))
