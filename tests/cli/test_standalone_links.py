"""``chromaline standalone --port N``: the links the auth service sends (a password reset) lead
to the port it serves, unless the public address is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from chromaline.auth.settings import AuthSettings
from chromaline.cli.standalone import Standalone


def _system(tmp_path: Path) -> Standalone:
    return Standalone.build(
        {
            "bus_url": "memory://links",
            "database_url": f"embedded://{tmp_path / 'postgres'}",
            "blob_url": f"file://{tmp_path / 'blobs'}",
        }
    )


def _reset_links_start(system: Standalone) -> str:
    settings = system.runtimes["auth"].settings
    assert isinstance(settings, AuthSettings)
    return settings.public_base_url


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8642, "http://127.0.0.1:8642"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("::1", 9001, "http://[::1]:9001"),
        ("studio.local", 80, "http://studio.local:80"),
    ],
)
def test_reset_links_lead_to_the_port_served(tmp_path: Path, host: str, port: int, expected: str) -> None:
    system = _system(tmp_path)
    system.send_links_to(host, port)
    assert _reset_links_start(system) == expected


def test_a_configured_public_address_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMALINE_PUBLIC_BASE_URL", "https://colour.example.org")
    system = _system(tmp_path)
    system.send_links_to("127.0.0.1", 8642)
    assert _reset_links_start(system) == "https://colour.example.org"
