"""Periodic work keeps its rhythm through failures, whether a dependency is down or not."""

from __future__ import annotations

import asyncio

import pytest

from chromaline.common.outages import DependencyUnavailableError
from chromaline.common.periodic import run_periodically


async def test_runs_go_on_after_an_outage_and_after_a_bug() -> None:
    calls: list[int] = []
    failures = [DependencyUnavailableError("database"), ZeroDivisionError("bug")]

    async def action() -> None:
        calls.append(len(calls))
        if failures:
            raise failures.pop(0)

    task = asyncio.create_task(run_periodically("probe", 0.01, action))
    for _ in range(500):
        if len(calls) >= 4:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 4


async def test_an_interval_of_zero_never_runs() -> None:
    async def action() -> None:
        raise AssertionError("ran")

    await asyncio.wait_for(run_periodically("probe", 0, action), timeout=1)
