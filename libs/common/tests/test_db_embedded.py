import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chromaline.common.db.embedded import start_embedded_postgres, stop_embedded_postgres
from chromaline.common.db.engine import Database

JOIN_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from pathlib import Path
from chromaline.common.db.embedded import start_embedded_postgres
print(asyncio.run(start_embedded_postgres(Path(sys.argv[1]))))
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "postgres"
    yield directory
    stop_embedded_postgres(directory)


async def test_embedded_url_runs_a_real_postgres_that_keeps_its_data_across_restarts(data_dir: Path) -> None:
    url = f"embedded://{data_dir}"
    database = await Database.open(url, schema="gateway")
    try:
        async with database.engine.begin() as connection:
            await connection.execute(sa.text("CREATE TABLE jobs (id int)"))
            await connection.execute(sa.text("INSERT INTO jobs VALUES (42)"))
    finally:
        await database.dispose()
    stop_embedded_postgres(data_dir)
    assert not (data_dir / "postmaster.pid").exists()

    database = await Database.open(url, schema="gateway")
    try:
        async with database.engine.connect() as connection:
            assert await connection.scalar(sa.text("SELECT id FROM jobs")) == 42
            assert (
                await connection.scalar(sa.text("SELECT current_setting('server_version_num')::int"))
                >= 150000
            )
    finally:
        await database.dispose()


async def test_one_server_serves_a_directory_within_and_across_processes(data_dir: Path) -> None:
    first, again = await asyncio.gather(start_embedded_postgres(data_dir), start_embedded_postgres(data_dir))
    assert first == again
    postmaster = (data_dir / "postmaster.pid").read_text().split()[0]

    joined = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", JOIN_FROM_ANOTHER_PROCESS, str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert joined.stdout.strip().splitlines()[-1] == first
    assert (data_dir / "postmaster.pid").read_text().split()[0] == postmaster
    database = await Database.open(f"embedded://{data_dir}", schema="auth")
    try:
        assert await database.ping()
    finally:
        await database.dispose()
