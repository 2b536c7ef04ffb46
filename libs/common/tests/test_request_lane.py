"""A service's requests (someone waits for them) are served beside its backlog, not behind it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chromaline.common.bus.base import EventBus
from chromaline.common.bus.memory import MemoryBus
from chromaline.common.bus.rabbitmq import RabbitMqBus
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.runtime import ServiceRuntime, ServiceSpec, requests_queue
from chromaline.common.settings import ServiceSettings
from chromaline.common.testing.events import bare_envelope

EXAMPLE_MIGRATIONS = Path(__file__).parent / "example_migrations"


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.integration)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    chosen: EventBus
    if request.param == "memory":
        chosen = MemoryBus(service="tests", shutdown_grace=5.0)
    else:
        exchange = f"{request.getfixturevalue('unique_name')}.events"
        chosen = RabbitMqBus(
            request.getfixturevalue("isolated_amqp_url"),
            service="tests",
            exchange=exchange,
            shutdown_grace=5.0,
        )
    await chosen.start()
    yield chosen
    await chosen.close()


async def test_a_request_is_served_while_the_backlog_is_busy(bus: EventBus) -> None:
    """The service's queue takes one message at a time and its handler is held; a request
    published after a backlog of such messages is still handled meanwhile, from its own queue."""
    held = asyncio.Event()
    started: list[str] = []
    answered = asyncio.Event()

    async def slow_report(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
        started.append(envelope.subject)
        await held.wait()

    async def wanted_now(runtime: ServiceRuntime, envelope: RawEnvelope) -> None:
        answered.set()

    service = f"svc_{uuid.uuid4().hex[:10]}"
    spec = ServiceSpec(
        name=service,
        migrations=EXAMPLE_MIGRATIONS,
        handlers={"image.corrected": slow_report},
        requests={"report.pdf_requested": wanted_now},
        prefetch=1,
    )
    runtime = ServiceRuntime(spec, ServiceSettings(), bus=bus)
    await runtime.start_consuming()
    for _ in range(3):
        await bus.publish(bare_envelope("image.corrected"))
    await bus.publish(bare_envelope("report.pdf_requested"))
    try:
        await asyncio.wait_for(answered.wait(), 15)
        assert len(started) == 1, "the backlog was not held"
        depths = await bus.queue_depths([service, requests_queue(service)])
        assert depths[requests_queue(service)] == 0
    finally:
        held.set()
