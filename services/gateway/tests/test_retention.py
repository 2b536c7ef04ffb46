"""The retention sweep on the real PostgreSQL and S3: who expires, the tombstone, the original
deleted, ``job.expired`` in the outbox, locks, a failing blob store, and each organisation's
period as the gateway hears of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from chromaline.common.blobs import buckets
from chromaline.common.blobs.factory import parse_s3_url
from chromaline.common.blobs.s3 import S3BlobStore
from chromaline.common.bus.memory import MemoryBus
from chromaline.common.events.contracts import BlobRef, JobOptions, OrganisationRetentionChanged
from chromaline.common.events.envelope import make_envelope
from chromaline.common.outbox import outbox_table
from chromaline.common.runtime import ServiceRuntime
from chromaline.gateway import jobs
from chromaline.gateway.models import Job, OrganisationRetention, SavedProfile
from chromaline.gateway.retention import record_period, sweep
from chromaline.gateway.service import SPEC
from chromaline.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEFAULT_DAYS = 30
NOW = datetime.now(UTC)


class RefusingDeletes(S3BlobStore):
    """S3, except that deleting the keys in ``refused`` fails as an unreachable server would."""

    refused: set[str]

    async def delete(self, bucket: str, key: str) -> None:
        if key in self.refused:
            raise ConnectionError(f"cannot reach S3 to delete {key}")
        await super().delete(bucket, key)


@pytest.fixture
async def store(s3_url: str) -> AsyncIterator[RefusingDeletes]:
    blobs = RefusingDeletes(parse_s3_url(s3_url))
    blobs.refused = set()
    yield blobs
    await blobs.close()


@pytest.fixture
async def gateway(service_database_url: str, store: RefusingDeletes) -> AsyncIterator[ServiceRuntime]:
    settings = GatewaySettings(
        database_url=service_database_url,
        bus_url=f"memory://retention-{uuid.uuid4().hex[:8]}",
        retention_default_days=DEFAULT_DAYS,
        retention_sweep_interval_seconds=0,
    )
    runtime = ServiceRuntime(SPEC, settings, blobs=store)
    await runtime.start(consume=False)
    yield runtime
    await runtime.stop()


JobMaker = Callable[..., Awaitable[Job]]


@pytest.fixture
def ended_job(gateway: ServiceRuntime) -> JobMaker:
    """``await ended_job(organisation, days_ago, state=...)``: a job of ``organisation`` that
    ended ``days_ago`` days before NOW, its original stored, its results named."""

    async def make(organisation: str, days_ago: float, *, state: str = "done") -> Job:
        prefix = uuid.uuid4()
        original = BlobRef(bucket=buckets.ORIGINALS, key=f"{prefix}/photo.jpg")
        await gateway.blobs.put_bytes(original.bucket, original.key, b"photo", content_type="image/jpeg")
        async with gateway.session() as session, session.begin():
            _, [job] = await jobs.create_batch(
                session, organisation, [("photo.jpg", "image/jpeg", 5, original)], JobOptions()
            )
            job.state = state
            job.finished_at = NOW - timedelta(days=days_ago)
            job.delta_e_before, job.delta_e_after, job.rating = 7.5, 1.25, "FADGI 3 star"
            if state == "done":
                job.results = {
                    name: {"bucket": buckets.CORRECTED, "key": f"{job.id}/{file}"}
                    for name, file in (("corrected", "corrected.jpg"), ("profile", "profile.json"))
                } | {"report_pdf": {"bucket": buckets.REPORTS, "key": f"{job.id}/report.pdf"}}
        return job

    return make


async def _state(runtime: ServiceRuntime, job: Job) -> Job:
    async with runtime.session() as session:
        found = await session.get(Job, job.id)
    assert found is not None
    return found


async def _expiry_events(runtime: ServiceRuntime) -> dict[str, dict[str, Any]]:
    table = outbox_table("gateway")
    async with runtime.session() as session:
        rows = await session.execute(select(table.c.payload).where(table.c.routing_key == "job.expired"))
    return {payload["subject"]: payload for payload in rows.scalars()}


async def _set_period(runtime: ServiceRuntime, organisation: uuid.UUID, days: int | None) -> None:
    change = OrganisationRetentionChanged(
        organisation_id=organisation, days=days, previous_days=None, changed_by=uuid.uuid4(), changed_at=NOW
    )
    async with runtime.session() as session, session.begin():
        await record_period(session, change)


async def test_jobs_past_their_organisations_period_become_tombstones_and_are_announced(
    gateway: ServiceRuntime, ended_job: JobMaker
) -> None:
    short, long = uuid.uuid4(), uuid.uuid4()
    await _set_period(gateway, short, 7)
    await _set_period(gateway, long, 90)
    past_default = await ended_job("org-default", DEFAULT_DAYS + 1)
    within_default = await ended_job("org-default", DEFAULT_DAYS - 1)
    past_short = await ended_job(str(short), 8, state="failed")
    within_long = await ended_job(str(long), DEFAULT_DAYS + 1)
    running = await ended_job("org-default", 400, state="detecting")
    async with gateway.session() as session, session.begin():
        session.add(
            SavedProfile(
                id=uuid.uuid4(),
                organisation_id="org-default",
                name="studio light",
                source_job_id=past_default.id,
                blob=past_default.results["profile"],
                cube=None,
            )
        )

    result = await sweep(gateway, now=NOW)

    assert (result.expired, result.failed) == (2, 0)
    states = {job.id: (await _state(gateway, job)).state for job in (within_default, within_long, running)}
    assert states == {within_default.id: "done", within_long.id: "done", running.id: "detecting"}
    tombstone = await _state(gateway, past_default)
    assert tombstone.state == "expired"
    assert tombstone.expired_at is not None
    assert (tombstone.original, tombstone.results) == ({}, {})
    assert (tombstone.filename, tombstone.organisation_id) == ("photo.jpg", "org-default")
    assert (tombstone.delta_e_before, tombstone.delta_e_after, tombstone.rating) == (
        7.5,
        1.25,
        "FADGI 3 star",
    )
    assert tombstone.finished_at == past_default.finished_at
    assert (await _state(gateway, past_short)).state == "expired"
    assert not await gateway.blobs.exists(buckets.ORIGINALS, past_default.original["key"])
    assert not await gateway.blobs.exists(buckets.ORIGINALS, past_short.original["key"])
    assert await gateway.blobs.exists(buckets.ORIGINALS, within_long.original["key"])

    events = await _expiry_events(gateway)
    assert set(events) == {str(past_default.id), str(past_short.id)}
    announced = events[str(past_default.id)]["data"]
    assert announced["retention_days"] == DEFAULT_DAYS
    assert datetime.fromisoformat(announced["cutoff"]) == NOW - timedelta(days=DEFAULT_DAYS)
    assert announced["original"] == past_default.original
    assert announced["results"] == past_default.results
    assert announced["kept"] == [past_default.results["profile"]]
    assert events[str(past_short.id)]["data"]["retention_days"] == 7

    again = await sweep(gateway, now=NOW)
    assert (again.expired, again.failed) == (0, 0)
    assert len(await _expiry_events(gateway)) == 2


async def test_a_job_locked_by_another_sweep_is_passed_over_not_waited_for(
    gateway: ServiceRuntime, ended_job: JobMaker
) -> None:
    held, free = await ended_job("org-lock", 400), await ended_job("org-lock", 400)
    async with gateway.session() as other, other.begin():
        await other.execute(select(Job).where(Job.id == held.id).with_for_update())
        result = await asyncio.wait_for(sweep(gateway, now=NOW), timeout=30)
        assert (result.expired, result.failed) == (1, 0)
    assert (await _state(gateway, held)).state == "done"
    assert (await _state(gateway, free)).state == "expired"
    assert (await sweep(gateway, now=NOW)).expired == 1
    assert (await _state(gateway, held)).state == "expired"


async def test_sweeps_running_at_once_expire_each_job_exactly_once(
    gateway: ServiceRuntime, ended_job: JobMaker
) -> None:
    created = [await ended_job("org-race", 400) for _ in range(12)]
    results = await asyncio.gather(*(sweep(gateway, now=NOW, batch_size=2) for _ in range(3)))
    assert sum(result.expired for result in results) == len(created)
    assert set(await _expiry_events(gateway)) == {str(job.id) for job in created}


async def test_a_job_whose_original_cannot_be_deleted_stays_whole_until_a_later_sweep(
    gateway: ServiceRuntime, ended_job: JobMaker, store: RefusingDeletes
) -> None:
    stuck, fine = await ended_job("org-flaky", 400), await ended_job("org-flaky", 400)
    store.refused.add(stuck.original["key"])

    result = await sweep(gateway, now=NOW)

    assert (result.expired, result.failed) == (1, 1)
    untouched = await _state(gateway, stuck)
    assert (untouched.state, untouched.original, untouched.results) == ("done", stuck.original, stuck.results)
    assert await gateway.blobs.exists(buckets.ORIGINALS, stuck.original["key"])
    assert set(await _expiry_events(gateway)) == {str(fine.id)}

    store.refused.clear()
    assert (await sweep(gateway, now=NOW)).expired == 1
    assert (await _state(gateway, stuck)).state == "expired"
    assert not await gateway.blobs.exists(buckets.ORIGINALS, stuck.original["key"])


async def _period_of(runtime: ServiceRuntime, organisation: uuid.UUID) -> OrganisationRetention | None:
    async with runtime.session() as session:
        return await session.get(OrganisationRetention, str(organisation))


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within 10 s: {what}")


async def test_the_gateway_keeps_the_latest_period_it_hears_of_and_only_from_our_services(
    gateway: ServiceRuntime,
) -> None:
    await gateway.start_consuming()
    organisation = uuid.uuid4()

    def change(days: int | None, at: datetime) -> OrganisationRetentionChanged:
        return OrganisationRetentionChanged(
            organisation_id=organisation,
            days=days,
            previous_days=None,
            changed_by=uuid.uuid4(),
            changed_at=at,
        )

    async def kept_days(days: int | None) -> bool:
        period = await _period_of(gateway, organisation)
        return period is not None and period.days == days

    await gateway.bus.publish(make_envelope("auth", str(organisation), change(60, NOW)))
    await _until(lambda: kept_days(60), "the gateway keeps the first period")
    await gateway.bus.publish(make_envelope("auth", str(organisation), change(5, NOW - timedelta(minutes=1))))
    await gateway.bus.publish(
        make_envelope("auth", str(organisation), change(None, NOW + timedelta(minutes=1)))
    )
    await _until(lambda: kept_days(None), "the gateway keeps the latest period")

    bus = gateway.bus
    assert isinstance(bus, MemoryBus)
    forged = make_envelope("auth", str(organisation), change(1, NOW + timedelta(hours=1)))
    await bus.publish_raw(
        "organisation.retention_changed", forged.model_dump_json().encode(), publisher="acme"
    )

    async def dead_lettered() -> bool:
        return bool(await bus.dead_letters("gateway"))

    await _until(dead_lettered, "the forged change is dead-lettered")
    [letter] = await bus.dead_letters("gateway")
    assert "not one of our services" in letter.reason
    assert await kept_days(None)
    async with gateway.session() as session:
        assert (
            await session.execute(sa.select(sa.func.count()).select_from(OrganisationRetention))
        ).scalar_one() == 1


async def test_a_gateway_sweeps_by_itself_every_interval(
    gateway: ServiceRuntime, ended_job: JobMaker, store: RefusingDeletes
) -> None:
    old = await ended_job("org-periodic", 400)
    settings = gateway.settings.model_copy(update={"retention_sweep_interval_seconds": 0.2})
    replica = ServiceRuntime(SPEC, settings, blobs=store)
    await replica.start(consume=False)
    try:

        async def expired() -> bool:
            return (await _state(gateway, old)).state == "expired"

        await _until(expired, "the replica's periodic sweep expires the old job")
    finally:
        await replica.stop()
