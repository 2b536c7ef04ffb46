"""``chromaline-retention-sweep``: expire, once, every job past its organisation's retention period.

Made for a Kubernetes CronJob, with the gateways' own periodic sweep turned off
(``CHROMALINE_GATEWAY_RETENTION_SWEEP_INTERVAL_SECONDS=0``); it ships in the gateway's package, so
the gateway's image runs it. It runs with the gateway's settings (``CHROMALINE_GATEWAY_…`` over
``CHROMALINE_…``), brings the gateway's schema up to date as a starting gateway would, sweeps, and
exits only once the gateway's outbox holds no unpublished event, so every ``job.expired`` it wrote
is on the bus. ``chromaline retention sweep`` runs the same.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence

from sqlalchemy import func, select

from chromaline.common.logging import configure_logging
from chromaline.common.outbox import outbox_table
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import service as gateway
from chromaline.gateway.retention import SweepResult, sweep
from chromaline.gateway.settings import GatewaySettings

OUTBOX_POLL_SECONDS = 0.2
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 120.0


class UnpublishedEventsError(RuntimeError):
    pass


async def unpublished_events(runtime: ServiceRuntime) -> int:
    table = outbox_table(runtime.name)
    async with runtime.database.engine.connect() as connection:
        count = await connection.execute(
            select(func.count()).select_from(table).where(table.c.sent_at.is_(None))
        )
    return int(count.scalar_one())


async def wait_until_published(runtime: ServiceRuntime, within: float) -> None:
    """Wait for the runtime's relay to publish every event of its outbox, ``within`` seconds."""
    deadline = time.monotonic() + within
    while (left := await unpublished_events(runtime)) > 0:
        if time.monotonic() > deadline:
            raise UnpublishedEventsError(
                f"{left} events still unpublished after {within:.0f} s (is the bus reachable?); "
                "they stay in the gateway's outbox, and its relay publishes them later"
            )
        await asyncio.sleep(OUTBOX_POLL_SECONDS)


async def sweep_once(settings: GatewaySettings, *, publish_timeout: float) -> SweepResult:
    """One sweep with a gateway runtime of its own: no consumers, no background tasks."""
    runtime = ServiceRuntime(dataclasses.replace(gateway.SPEC, background=()), settings)
    await runtime.start(consume=False)
    try:
        result = await sweep(runtime)
        await wait_until_published(runtime, publish_timeout)
    finally:
        await runtime.stop()
    return result


def plural(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def run(publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT_SECONDS) -> int:
    """Sweep once with the gateway's settings, say how many jobs expired; the exit status."""
    settings = gateway.load_settings()
    configure_logging(settings.log_level, settings.log_format, service="retention-sweep")
    try:
        result = asyncio.run(sweep_once(settings, publish_timeout=publish_timeout))
    except Exception as error:
        print(f"retention sweep failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"{plural(result.expired)} expired")
    if result.failed:
        print(
            f"{plural(result.failed)} could not be expired: their originals could not be deleted "
            "(see the log); the next sweep tries again",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="chromaline-retention-sweep",
        description="Expire every job older than its organisation's retention period, once, and say how many.",
    )
    parser.add_argument(
        "--publish-timeout",
        type=float,
        default=DEFAULT_PUBLISH_TIMEOUT_SECONDS,
        help="Seconds to wait for the expiry events to reach the bus.",
    )
    arguments = parser.parse_args(argv)
    if arguments.publish_timeout < 1:
        parser.error("--publish-timeout must be at least 1 second")
    sys.exit(run(arguments.publish_timeout))


if __name__ == "__main__":
    main()
