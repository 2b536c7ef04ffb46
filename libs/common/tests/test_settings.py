from __future__ import annotations

import pytest
from pydantic import ValidationError

from chromaline.common.settings import ServiceSettings


def test_service_specific_variables_override_shared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMALINE_BUS_URL", "amqp://shared/")
    monkeypatch.setenv("CHROMALINE_DETECTOR_BUS_URL", "amqp://detector-only/")
    monkeypatch.setenv("CHROMALINE_BLOB_URL", "s3://k:s@minio:9000")
    detector = ServiceSettings.for_service("detector")
    corrector = ServiceSettings.for_service("corrector")
    assert detector.bus_url == "amqp://detector-only/"
    assert corrector.bus_url == "amqp://shared/"
    assert detector.blob_url == corrector.blob_url == "s3://k:s@minio:9000"
    assert detector.service_name == "detector"


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHROMALINE_BUS_URL", "CHROMALINE_DATABASE_URL", "CHROMALINE_BLOB_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = ServiceSettings.for_service("gateway")
    assert settings.bus_url.startswith("memory://")
    assert settings.database_url.startswith("embedded://")
    assert settings.blob_url.startswith("file://")


@pytest.mark.parametrize("secret", ["dev-secret", "change-me", ""])
def test_placeholder_secrets_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("CHROMALINE_ENVIRONMENT", "production")
    monkeypatch.setenv("CHROMALINE_SIGNING_SECRET", secret)
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings.for_service("gateway")


def test_real_secrets_pass_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMALINE_ENVIRONMENT", "production")
    monkeypatch.setenv("CHROMALINE_SIGNING_SECRET", "f3c9a1d27e6b4c58a0e9")
    assert ServiceSettings.for_service("gateway").environment == "production"
