"""A PostgreSQL cluster and a RabbitMQ node of a test's own, on free ports of 127.0.0.1.

For tests that stop and restart their servers: the machine's shared PostgreSQL (5432) and
RabbitMQ (5672) serve other tests at the same time and must never be stopped. Both keep their
data in a temporary directory, so a restart keeps the databases, the durable queues and their
messages. Run as root, PostgreSQL's commands run as the ``postgres`` user (it refuses root);
RabbitMQ runs from its own scripts (``/usr/lib/rabbitmq/bin``) with every path, the node name
and both ports set, so it shares nothing with the machine's node but the port mapper (epmd).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from chromaline.common.testing.services import free_port, missing_service, port_answers

RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def _wait_for_port(port: int, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not port_answers("127.0.0.1", port, timeout=0.2):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer on port {port} within {timeout:.0f} s")
        time.sleep(0.1)


def _postgres_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        if not candidates:
            missing_service(
                "PostgreSQL", f"{name} is not installed (a private cluster needs initdb and pg_ctl)"
            )
        found = str(candidates[-1])
    return found


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory of its own (which, unlike pytest's, the
    ``postgres`` user can enter), trusting local connections, on a free port."""

    root: Path = field(default_factory=lambda: _temporary_directory("chromaline-postgres-"))
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def _data(self) -> Path:
        return self.root / "data"

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_postgres, *command], capture_output=True, timeout=START_TIMEOUT, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {output}")

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(
            _postgres_binary("initdb"), "-D", str(self._data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            _postgres_binary("pg_ctl"),
            "-D",
            str(self._data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` ends every session at once, as an operator's restart would."""
        self._run(_postgres_binary("pg_ctl"), "-D", str(self._data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the cluster if it runs and delete its directory."""
        if (self._data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _temporary_directory(prefix: str) -> Path:
    """A directory under the system's temporary directory; pytest's own is no place for a server
    that must outlive a test, since other pytest runs prune old ones."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@dataclass
class PrivateRabbitNode:
    """A RabbitMQ node of its own (name, ports, database, logs) in a temporary directory."""

    root: Path = field(default_factory=lambda: _temporary_directory("chromaline-rabbitmq-"))
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    name: str = field(default_factory=lambda: f"chromaline-test-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
        }

    def create(self) -> None:
        if not (RABBITMQ_SCRIPTS / "rabbitmq-server").exists():
            missing_service(
                "RabbitMQ", f"no rabbitmq-server in {RABBITMQ_SCRIPTS} to start a node of the test's own"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text("loopback_users = none\n")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(RABBITMQ_SCRIPTS / "rabbitmq-server")],
            env=self._env(),
            cwd=self.root,
            stdout=(self.root / "stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_for_port(self.port, f"RabbitMQ node {self.name}")

    def stop(self) -> None:
        """Stop the node with SIGTERM, as a service manager does (queues and messages stay on
        disk); SIGKILL when it takes longer than ``STOP_TIMEOUT``, a crash it recovers from too."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def remove(self) -> None:
        """Stop the node if it runs and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
