"""Load benchmark: many uploads through the real services, beside the engine alone on the same cores.

Starts each service as its own ``chromaline serve`` process (as in the containers) on the local
RabbitMQ (a virtual host of the run's own), PostgreSQL (a database of the run's own) and an S3
endpoint (moto's threaded server in this process, unless ``--blob-url`` names one), all on
127.0.0.1. It sends ``--warm-up`` photos one by one through every stage first, since each process
loads its libraries on its first job, then uploads ``--uploads`` photos, one per job, at most
``--concurrency`` in flight, and prints:

* throughput (jobs/s from the first upload to the last job done, and to the last report ready)
  and latency percentiles from the upload accepted to its job being done (the corrected image
  exists) and to its report being ready, from the job's server-side ``stage_times``; a slot of the
  load frees when its job is done, so the reports queue up behind the image path;
* the depth of each worker's queue over time, sampled every ``--sample-seconds``;
* per service process: resident memory idle (ready, before any upload) and at its peak under load,
  and CPU seconds spent during the load (with the share of one core);
* the engine-only ceiling: the same photos through ``chromaline correct``, split over as many
  processes as the machine has cores; raw, and without each process's start-up (timed apart);
* pipeline throughput / engine-only ceiling, against the target of 0.8: by the wall clock, and
  by CPU seconds per photo (engine ÷ all services), which is what the wall-clock ratio would be on
  cores of their own and holds still when other work shares the machine.

Run: ``uv run python bench/load.py [--uploads 40] [--concurrency 8] [--size 2000x1500]
[--replicas detector=2,corrector=2,reporter=1] [--rounds 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from chromaline.cli.processes import ServiceProcess, free_port, wait_ready
from chromaline.cli.services import SERVICE_NAMES
from chromaline.common.bus.factory import create_bus
from chromaline.engine.synthetic import render_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import READY_SECONDS, authenticated_client, isolated_stores, percentile
from service_env import service_env

WORKERS = ("detector", "corrector", "reporter")
CEILING_TARGET = 0.8
DEFAULT_MIX = "detector=2,corrector=2,reporter=1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 0.25
"""How often each upload's batch is polled: latency is known to this much; more often and the
gateway's CPU goes to answering the bench."""


def parse_mix(text: str) -> dict[str, int]:
    """``detector=2,corrector=2,reporter=1`` → replicas per worker stage (1 where unnamed)."""
    mix = dict.fromkeys(WORKERS, 1)
    for part in filter(None, text.split(",")):
        name, _, count = part.partition("=")
        if name not in WORKERS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"replicas: {part!r} is not <detector|corrector|reporter>=<n ≥ 1>")
        mix[name] = int(count)
    return mix


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class ProcessUsage:
    name: str
    pid: int
    idle_rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    cpu_at_start: float = 0.0
    cpu_seconds: float = 0.0


@dataclass
class Samples:
    """What the sampler thread saw while the load ran."""

    queue_depths: list[tuple[float, dict[str, int]]] = field(default_factory=list)


@contextmanager
def s3_endpoint(configured: str | None) -> Iterator[str]:
    """``configured``, or else an S3 endpoint on 127.0.0.1 served by moto from a thread of this
    process (its CPU is the bench's, not a service's)."""
    if configured:
        yield configured
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per S3 request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"s3://testing:testing@127.0.0.1:{port}?secure=false&region=us-east-1"
    finally:
        server.stop()


@contextmanager
def running_services(
    mix: dict[str, int], amqp_url: str, database_url: str, blob_url: str, logs: Path
) -> Iterator[list[ServiceProcess]]:
    """Every service as its own process; the workers with ``mix`` replicas each. The gateway's
    limits on one user's uploads are lifted: the bench's one user sends the whole load."""
    env = service_env(
        amqp_url,
        database_url,
        blob_url,
        CHROMALINE_GATEWAY_UPLOAD_RATE_PER_MINUTE="100000",
        CHROMALINE_GATEWAY_UPLOAD_BURST="10000",
        CHROMALINE_GATEWAY_MAX_UPLOADS_IN_PROGRESS_PER_USER="10000",
    )
    processes = [
        ServiceProcess(name, free_port(), env, logs / f"{name}-{replica}.log")
        for name in SERVICE_NAMES
        for replica in range(mix.get(name, 1))
    ]
    env["CHROMALINE_GATEWAY_AUTH_URL"] = next(process.url for process in processes if process.name == "auth")
    try:
        for process in processes:
            process.start()
        for process in processes:
            wait_ready(process.url, timeout=READY_SECONDS, process=process.process)
        yield processes
    finally:
        for process in processes:
            process.stop()


def sample_while(
    stop: threading.Event, amqp_url: str, usage: list[ProcessUsage], samples: Samples, every: float
) -> None:
    """Until ``stop``: each worker queue's depth, and each process's resident memory."""

    async def run() -> None:
        bus = create_bus(amqp_url, service="bench")
        await bus.start()
        started = time.perf_counter()
        try:
            while not stop.is_set():
                depths = await bus.queue_depths(WORKERS)
                samples.queue_depths.append((time.perf_counter() - started, depths))
                for process in usage:
                    process.peak_rss_mib = max(process.peak_rss_mib, rss_mib(process.pid))
                await asyncio.sleep(every)
        finally:
            await bus.close()

    asyncio.run(run())


@dataclass(frozen=True)
class Timing:
    """One job's server-side times, in seconds from the first upload accepted: uploaded, done
    (corrected image stored) and reported (report ready)."""

    uploaded: float
    done: float
    reported: float

    @property
    def to_done(self) -> float:
        return self.done - self.uploaded

    @property
    def to_report(self) -> float:
        return self.reported - self.uploaded


def upload_until_done(client: httpx.Client, photo: bytes, name: str, timeout: float) -> str:
    """Send one photo and poll until its job is done (its report may still be pending): a slot of
    the load frees when the image is ready, so the image path is measured apart from the reports."""
    response = client.post("/api/v1/jobs", files=[("files", (name, photo, "image/jpeg"))])
    response.raise_for_status()
    job_id: str = response.json()["jobs"][0]["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] == "done":
            return job_id
        if job["state"] in ("failed", "expired"):
            raise RuntimeError(f"{name}: job ended {job['state']} {job['reason']}")
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{name}: not done within {timeout:.0f} s")


def wait_for_reports(client: httpx.Client, job_ids: list[str], timeout: float) -> list[dict[str, str]]:
    """Each job's ``stage_times`` once its report is ready.

    Reports come in about the order of their uploads, so each poll asks for the pending jobs in
    that order and stops at the first still pending: asking for every pending job each time made
    the gateway answer the bench for as much CPU as the reporter spent on the reports. Latencies
    come from the server's ``stage_times``, so they do not depend on when the bench asks."""
    deadline = time.monotonic() + timeout
    pending = list(job_ids)
    times: dict[str, dict[str, str]] = {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            if job["report"]["state"] == "failed":
                raise RuntimeError(f"job {job_id}: report {job['report']}")
            if job["report"]["state"] != "ready":
                break
            times[job_id] = job["stage_times"]
            pending.remove(job_id)
        time.sleep(POLL_SECONDS)
    if pending:
        raise TimeoutError(f"{len(pending)} reports not ready within {timeout:.0f} s")
    return [times[job_id] for job_id in job_ids]


def timings_of(stage_times: list[dict[str, str]]) -> list[Timing]:
    def at(times: dict[str, str], stage: str) -> float:
        return datetime.fromisoformat(times[stage]).timestamp()

    origin = min(at(times, "uploaded") for times in stage_times)
    return [
        Timing(at(times, "uploaded") - origin, at(times, "done") - origin, at(times, "reported") - origin)
        for times in stage_times
    ]


@dataclass(frozen=True)
class LoadResult:
    timings: list[Timing]
    usage: list[ProcessUsage]
    samples: Samples

    @property
    def seconds(self) -> float:
        """From the first upload accepted to the last report ready."""
        return max(timing.reported for timing in self.timings)

    @property
    def seconds_to_done(self) -> float:
        """From the first upload accepted to the last job done."""
        return max(timing.done for timing in self.timings)

    @property
    def throughput(self) -> float:
        """Jobs done (corrected images) per second."""
        return len(self.timings) / self.seconds_to_done

    @property
    def report_throughput(self) -> float:
        return len(self.timings) / self.seconds

    @property
    def cpu_seconds_per_photo(self) -> float:
        return sum(process.cpu_seconds for process in self.usage) / len(self.timings)


def drive_load(
    processes: list[ServiceProcess],
    base_url: str,
    amqp_url: str,
    photos: list[bytes],
    concurrency: int,
    every: float,
    timeout: float,
    warm_ups: int,
) -> LoadResult:
    usage = [
        ProcessUsage(process.name, process.process.pid)
        for process in processes
        if process.process is not None
    ]
    for process in usage:
        process.idle_rss_mib = process.peak_rss_mib = rss_mib(process.pid)
    with closing(authenticated_client(base_url)) as client:
        client.timeout = httpx.Timeout(timeout)
        warm_up(client, photos[:warm_ups], timeout)
        for process in usage:
            process.cpu_at_start = cpu_seconds(process.pid)
        samples = Samples()
        stop = threading.Event()
        sampler = threading.Thread(target=sample_while, args=(stop, amqp_url, usage, samples, every))
        sampler.start()
        try:
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                job_ids = list(
                    pool.map(
                        lambda item: upload_until_done(client, item[1], f"load-{item[0]}.jpg", timeout),
                        enumerate(photos),
                    )
                )
            timings = timings_of(wait_for_reports(client, job_ids, timeout))
        finally:
            stop.set()
            sampler.join()
    for process in usage:
        process.cpu_seconds = cpu_seconds(process.pid) - process.cpu_at_start
    return LoadResult(timings, usage, samples)


def warm_up(client: httpx.Client, photos: list[bytes], timeout: float) -> None:
    """Photos through every stage before the measured load, reports included: each service process
    loads its libraries on its first job (the reporter's plotting with its first report), a cost
    paid once per process and not per photo, like the start-up the engine-only ceiling leaves out."""
    job_ids = [
        upload_until_done(client, photo, f"warm-up-{index}.jpg", timeout)
        for index, photo in enumerate(photos)
    ]
    wait_for_reports(client, job_ids, timeout)


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Ceiling:
    seconds: float
    startup_seconds: float
    processes: int
    photos: int
    cpu_seconds: float
    """CPU time of the correcting processes, their start-up taken out."""

    @property
    def raw(self) -> float:
        return self.photos / self.seconds

    @property
    def warm(self) -> float:
        """Photos per second once each process has imported the engine."""
        return self.photos / max(self.seconds - self.startup_seconds, 1e-9)


def engine_ceiling(photos: list[bytes], scratch: Path, processes: int) -> Ceiling:
    """The same photos through ``chromaline correct``, one process per core, started together."""
    command = str(Path(sys.executable).parent / "chromaline")
    folder = scratch / "ceiling"
    folder.mkdir(exist_ok=True)
    paths = []
    for index, photo in enumerate(photos):
        path = folder / f"photo-{index}.jpg"
        path.write_bytes(photo)
        paths.append(path)
    startup_started = time.perf_counter()
    cpu_before = children_cpu_seconds()
    subprocess.run(  # the engine's import and a refusal: what each process pays before its first photo
        [command, "correct", str(folder / "missing.jpg"), "--out", str(folder / "out")],
        capture_output=True,
        check=False,
    )
    startup = time.perf_counter() - startup_started
    startup_cpu = children_cpu_seconds() - cpu_before
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [command, "correct", *map(str, paths[share::processes]), "--out", str(folder / "out")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for share in range(min(processes, len(paths)))
    ]
    codes = [process.wait() for process in running]
    seconds = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"chromaline correct exited with {codes}")
    cpu = children_cpu_seconds() - cpu_before - startup_cpu * len(running)
    return Ceiling(seconds, startup, len(running), len(photos), cpu)


def print_queue_depths(samples: Samples, rows: int = 12) -> None:
    series = samples.queue_depths
    if not series:
        return
    step = max(1, len(series) // rows)
    print(f"{'t s':>7}" + "".join(f"{name:>11}" for name in WORKERS))
    for elapsed, depths in series[::step]:
        print(f"{elapsed:>7.1f}" + "".join(f"{depths.get(name, 0):>11}" for name in WORKERS))
    peaks = {name: max(depths.get(name, 0) for _, depths in series) for name in WORKERS}
    print(f"{'peak':>7}" + "".join(f"{peaks[name]:>11}" for name in WORKERS))


def print_usage(result: LoadResult) -> None:
    print(f"{'process':14}{'idle RSS MiB':>14}{'peak RSS MiB':>14}{'CPU s':>9}{'CPU share':>11}")
    for process in result.usage:
        share = process.cpu_seconds / result.seconds
        print(
            f"{process.name:14}{process.idle_rss_mib:>14.0f}{process.peak_rss_mib:>14.0f}"
            f"{process.cpu_seconds:>9.1f}{share:>10.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8, help="uploads in flight at most")
    parser.add_argument("--size", default="2000x1500", help="photo size, WxH")
    parser.add_argument("--replicas", default=DEFAULT_MIX, help="replicas per worker stage")
    parser.add_argument("--rounds", type=int, default=1, help="repeat load and ceiling side by side")
    parser.add_argument("--sample-seconds", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="per upload, seconds")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://root@127.0.0.1:5432/postgres")
    parser.add_argument("--blob-url", default=None, help="default: moto S3 on 127.0.0.1")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument(
        "--warm-up", type=int, default=4, help="photos through the pipeline before the measured load"
    )
    arguments = parser.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each round's figures as soon as they exist
    mix = parse_mix(arguments.replicas)
    width, height = (int(part) for part in arguments.size.split("x"))
    distinct = min(arguments.uploads, 8)
    rendered = [
        render_scene(500 + seed, chart="classic24", size=(width, height)).image_bytes
        for seed in range(distinct)
    ]
    photos = [rendered[index % distinct] for index in range(arguments.uploads)]
    cores = os.cpu_count() or 1
    print(
        f"{arguments.uploads} uploads of {width}×{height} ({width * height / 1e6:.1f} MP), "
        f"{arguments.concurrency} in flight, replicas {mix}, {cores} cores, {arguments.rounds} round(s), "
        f"{arguments.warm_up} warm-up photo(s) first"
    )
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="chromaline-load-") as scratch_name:
        scratch = Path(scratch_name)
        for round_number in range(1, arguments.rounds + 1):
            with (
                s3_endpoint(arguments.blob_url) as blob_url,
                isolated_stores(arguments.amqp_url, arguments.postgres_url) as (amqp_url, database_url),
                running_services(mix, amqp_url, database_url, blob_url, scratch) as processes,
            ):
                gateway = next(process for process in processes if process.name == "gateway")
                result = drive_load(
                    processes,
                    gateway.url,
                    amqp_url,
                    photos,
                    arguments.concurrency,
                    arguments.sample_seconds,
                    arguments.timeout,
                    arguments.warm_up,
                )
            print(f"\n== round {round_number}")
            print(
                f"pipeline: {result.throughput:.2f} jobs/s done over {result.seconds_to_done:.1f} s, "
                f"{result.report_throughput:.2f} reports/s over {result.seconds:.1f} s"
            )
            for label, latencies in (
                ("to done", [timing.to_done for timing in result.timings]),
                ("to report ready", [timing.to_report for timing in result.timings]),
            ):
                print(
                    f"latency {label}: p50 {statistics.median(latencies):.2f} s, "
                    f"p95 {percentile(latencies, 0.95):.2f} s, p99 {percentile(latencies, 0.99):.2f} s, "
                    f"max {max(latencies):.2f} s"
                )
            print_queue_depths(result.samples)
            print_usage(result)
            if arguments.skip_ceiling:
                continue
            ceiling = engine_ceiling(photos, scratch, cores)
            ratio = result.throughput / ceiling.warm
            engine_cpu = ceiling.cpu_seconds / ceiling.photos
            cpu_ratio = engine_cpu / result.cpu_seconds_per_photo
            ratios.append(cpu_ratio)
            print(
                f"engine only (chromaline correct × {ceiling.processes}): {ceiling.raw:.2f} photos/s raw, "
                f"{ceiling.warm:.2f} photos/s without start-up ({ceiling.startup_seconds:.1f} s per process)"
            )
            print(
                f"pipeline / engine-only ceiling, wall clock: {ratio:.2f} to done, "
                f"{result.report_throughput / ceiling.warm:.2f} to report ready"
            )
            print(
                f"CPU per photo: engine {engine_cpu:.2f} s, pipeline {result.cpu_seconds_per_photo:.2f} s "
                f"(all services); pipeline / engine-only ceiling on dedicated cores: {cpu_ratio:.2f}   "
                f"target ≥ {CEILING_TARGET}   {'met' if cpu_ratio >= CEILING_TARGET else 'NOT met'}"
            )
    if len(ratios) > 1:
        print(
            f"\npipeline / ceiling (CPU per photo) over {len(ratios)} rounds: median {statistics.median(ratios):.2f}, "
            f"range {min(ratios):.2f}–{max(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
