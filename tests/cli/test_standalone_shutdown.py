"""``chromaline standalone`` stopped by SIGTERM stops the embedded PostgreSQL it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chromaline.cli.processes import free_port, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _postmaster_alive(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_the_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    port = free_port()
    env = {
        **os.environ,
        "CHROMALINE_DATABASE_URL": f"embedded://{data_dir}",
        "CHROMALINE_BLOB_URL": f"file://{tmp_path / 'blobs'}",
        "CHROMALINE_BUS_URL": "memory://",
    }
    with (tmp_path / "standalone.log").open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "chromaline"), "standalone", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}", process=process, timeout=120)
            assert _postmaster_alive(data_dir)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    deadline = time.monotonic() + 20
    while _postmaster_alive(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postmaster_alive(data_dir), (tmp_path / "standalone.log").read_text()[-2000:]
