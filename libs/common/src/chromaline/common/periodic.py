"""Background work repeated at an interval, surviving its own failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chromaline.common.logging import get_logger
from chromaline.common.outages import unavailable_dependency

log = get_logger(__name__)


async def run_periodically(
    name: str, interval_seconds: float, action: Callable[[], Awaitable[object]]
) -> None:
    """Run ``action`` every ``interval_seconds`` (0 or less: never), the first time after one interval.

    A failing run is logged and the next one runs on time: a database or blob store that is down
    for a while only postpones the work (``<name>.postponed``, a warning); any other error is
    ``<name>.failed`` with its traceback.
    """
    if interval_seconds <= 0:
        log.info(f"{name}.off")
        return
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await action()
        except Exception as error:
            dependency = unavailable_dependency(error)
            if dependency is None:
                log.exception(f"{name}.failed")
            else:
                log.warning(
                    f"{name}.postponed", dependency=dependency, error=f"{type(error).__name__}: {error}"
                )
