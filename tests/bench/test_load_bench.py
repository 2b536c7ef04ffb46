"""The load benchmark's own code on two small uploads through the real services: it must keep
running, whatever the timings."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chromaline.common.testing.services import port_answers

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def load() -> ModuleType:
    if not (port_answers("127.0.0.1", 5672) and port_answers("127.0.0.1", 5432)):
        pytest.skip("needs RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432")
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module("bench.load")
    finally:
        sys.path.remove(str(ROOT))


def test_replica_mixes_are_parsed_and_checked(load: ModuleType) -> None:
    assert load.parse_mix("detector=2,reporter=3") == {"detector": 2, "corrector": 1, "reporter": 3}
    with pytest.raises(ValueError, match="gateway=2"):
        load.parse_mix("gateway=2")


def test_two_uploads_go_through_every_service_and_are_measured(
    load: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.argv = [
        "load.py",
        "--uploads",
        "2",
        "--concurrency",
        "2",
        "--size",
        "800x600",
        "--sample-seconds",
        "0.5",
        "--warm-up",
        "1",
    ]

    load.main()

    printed = capsys.readouterr().out
    assert "pipeline:" in printed
    assert "jobs/s" in printed
    for name in ("gateway", "auth", "detector", "corrector", "reporter"):
        assert f"\n{name} " in printed
    assert "peak" in printed
    assert "engine only (chromaline correct × " in printed
    assert "pipeline / engine-only ceiling, wall clock:" in printed
    assert "CPU per photo: engine " in printed
