"""The services this installation can run, by name."""

from __future__ import annotations

from typing import Any

from chromaline.auth import service as auth
from chromaline.common.entrypoint import ServiceEntry
from chromaline.corrector import service as corrector
from chromaline.detector import service as detector
from chromaline.gateway import service as gateway
from chromaline.reporter import service as reporter

SERVICES: dict[str, ServiceEntry[Any]] = {
    entry.name: entry
    for entry in (gateway.ENTRY, auth.ENTRY, detector.ENTRY, corrector.ENTRY, reporter.ENTRY)
}
