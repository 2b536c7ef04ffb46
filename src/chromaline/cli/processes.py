"""Services started as separate processes, as in production: for the system tests and benches."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_ready(
    url: str, timeout: float = READY_TIMEOUT, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url``/readyz answers 200 (its database, bus and blob store answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready within {timeout:.0f} s")


@dataclass
class ServiceProcess:
    """One ``chromaline-<service> serve`` process (the containers' entry point) on a local port."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        executable = Path(sys.executable).parent / f"chromaline-{self.name}"
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(executable), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        wait_ready(self.url, process=self.process)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, in-flight work abandoned mid-way."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, letting in-flight messages finish; SIGKILL after 40 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
