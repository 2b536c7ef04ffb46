"""A property-based fuzz of every operation in the gateway's OpenAPI document (schemathesis).

Signed in as a member of organisation A, against the system of conftest.py on 127.0.0.1 only,
and bounded: for each operation :data:`EXAMPLES_PER_MODE` requests that match the schema and as
many that do not (where the schema leaves room for any), drawn deterministically and never shrunk, so the run is a few hundred requests
and a failure repeats. No request may answer 5xx, every 4xx must be a problem document with a
``code``, and no answer may take longer than :data:`MAX_SECONDS`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from chromaline.common.blobs.base import BlobStore

from .conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXAMPLES_PER_MODE = 5
MAX_SECONDS = 5.0
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_MODE,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)


def _fault(case: Any, response: Any, elapsed: float) -> str | None:
    """What is wrong with one answer, or None."""
    request = f"{case.method} {case.formatted_path} {case.query or ''}"
    if response.status_code >= 500:
        return f"{request}: {response.status_code} {response.text[:200]}"
    if response.status_code >= 400:
        content_type = response.headers.get("content-type") or [""]
        if content_type != ["application/problem+json"]:
            return f"{request}: {response.status_code} as {content_type}"
        if not response.json().get("code"):
            return f"{request}: a problem without a code: {response.text[:200]}"
    if elapsed > MAX_SECONDS:
        return f"{request}: answered in {elapsed:.1f} s"
    return None


def test_no_request_breaks_the_gateway(world: World, presigning_store: BlobStore) -> None:
    assert world.url.startswith("http://127.0.0.1:"), "the fuzz only ever targets this machine"
    schema = schemathesis.openapi.from_url(f"{world.url}/openapi.json")
    headers = world.callers["member"].headers
    faults: list[str] = []
    sent = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in schemathesis.GenerationMode:

            @FUZZ_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: Any) -> None:
                nonlocal sent
                sent += 1
                started = time.monotonic()
                response = case.call(headers=headers, timeout=MAX_SECONDS * 2)
                fault = _fault(case, response, time.monotonic() - started)
                if fault:
                    faults.append(fault)

            try:
                send()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE, f"{operation.label}: no valid request"
    assert len(operations) >= 30, "the OpenAPI document lost operations"
    assert sent <= len(operations) * EXAMPLES_PER_MODE * 2
    assert not faults, f"{len(faults)} of {sent} requests:\n" + "\n".join(faults[:40])
