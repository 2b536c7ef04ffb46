"""A report that can never be made is announced as failed at stage ``report`` (the job keeps its
corrected image) instead of being retried into the dead-letter queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from chromaline.common.events.contracts import ImageCorrected
from chromaline.common.events.envelope import RawEnvelope, make_envelope
from chromaline.common.measurements import Measurements
from chromaline.common.runtime import ServiceRuntime
from chromaline.reporter.handlers import on_image_corrected

pytestmark = pytest.mark.integration

StoreCorrected = Callable[[bytes, bytes], Awaitable[ImageCorrected]]


async def _failures_for(runtime: ServiceRuntime, event: ImageCorrected) -> list[RawEnvelope]:
    heard: list[RawEnvelope] = []

    async def observe(envelope: RawEnvelope) -> None:
        heard.append(envelope)

    await runtime.bus.subscribe(f"observer-{event.job_id}", ["processing.failed"], observe)
    envelope = make_envelope("corrector", str(event.job_id), event)
    await on_image_corrected(runtime, envelope)
    for _ in range(200):
        if heard:
            break
        await asyncio.sleep(0.05)
    return heard


async def test_unreadable_measurements_fail_the_report(
    runtime: ServiceRuntime, store_corrected: StoreCorrected
) -> None:
    event = await store_corrected(b'{"not": "measurements"}', b"")
    [failed] = await _failures_for(runtime, event)
    assert failed.subject == str(event.job_id)
    assert (failed.data["stage"], failed.data["reason"]) == ("report", "unreadable_measurements")


async def test_a_photo_that_cannot_be_decoded_fails_the_report(
    runtime: ServiceRuntime, store_corrected: StoreCorrected, chartless_measurements: Measurements
) -> None:
    event = await store_corrected(chartless_measurements.model_dump_json().encode(), b"\xff\xd8 no jpeg")
    [failed] = await _failures_for(runtime, event)
    assert (failed.data["stage"], failed.data["reason"]) == ("report", "decode_error")
    assert "could not be decoded" in failed.data["message"]
