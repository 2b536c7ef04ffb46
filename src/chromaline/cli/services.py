"""The services this installation can run, by name.

A service's module is imported only when that service is asked for, so ``chromaline serve
gateway`` loads the gateway and the plumbing it shares, not the colour engine the workers need.
"""

from __future__ import annotations

import importlib
from typing import Any

from chromaline.common.entrypoint import ServiceEntry

SERVICE_NAMES = ("gateway", "auth", "detector", "corrector", "reporter")


def service_entry(name: str) -> ServiceEntry[Any]:
    """The entry of one service, importing only that service's package."""
    if name not in SERVICE_NAMES:
        raise KeyError(name)
    entry: ServiceEntry[Any] = importlib.import_module(f"chromaline.{name}.service").ENTRY
    return entry


def __getattr__(attribute: str) -> dict[str, ServiceEntry[Any]]:
    """``SERVICES``: every service's entry, by name (imports them all, for standalone mode)."""
    if attribute == "SERVICES":
        return {name: service_entry(name) for name in SERVICE_NAMES}
    raise AttributeError(attribute)
