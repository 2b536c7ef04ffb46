"""Background work repeated at an interval, surviving its own failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chromaline.common.logging import get_logger

log = get_logger(__name__)


async def run_periodically(
    name: str, interval_seconds: float, action: Callable[[], Awaitable[object]]
) -> None:
    """Run ``action`` every ``interval_seconds`` (0 or less: never), the first time after one interval.

    A failing run is logged as ``<name>.failed`` and the next one runs on time: a database or blob
    store that is down for a while only delays the work.
    """
    if interval_seconds <= 0:
        log.info(f"{name}.off")
        return
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await action()
        except Exception:
            log.exception(f"{name}.failed")
