"""Waiting in async tests for something another task or the broker makes true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_SECONDS = 0.02


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Return once ``condition()`` holds; fail the test if it does not within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(POLL_SECONDS)
