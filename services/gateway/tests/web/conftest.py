"""The web app in real headless Chromium, against the whole system started in this process.

The system is the one-process standalone (embedded PostgreSQL in a temporary folder, in-memory
bus, blobs in a folder) served by uvicorn on 127.0.0.1. Chromium is Debian's package, driven by
Playwright; the tests never install a browser. Screenshots land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from chromaline.cli.standalone import BackgroundServer, Standalone
from chromaline.common.testing.services import missing_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[4] / "artifacts" / "screenshots"
READY_TIMEOUT = 90.0



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready within {READY_TIMEOUT:.0f} s")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway, with every service behind it, on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("web-system")
    overrides: dict[str, Any] = {
        "bus_url": "memory://",
        "database_url": f"embedded://{root / 'postgres'}",
        "blob_url": f"file://{root / 'blobs'}",
    }
    system = Standalone.build(overrides)
    port = _free_port()
    with BackgroundServer(system.gateway_app(), "127.0.0.1", port):
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing_service("chromium", f"{CHROMIUM} is missing; install Debian's package: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = _launch(playwright)
        try:
            yield launched
        finally:
            launched.close()


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


@dataclass
class PageErrors:
    """Uncaught script errors and console errors seen by a page; a test fails on any."""

    messages: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors = PageErrors()
    opened.on("pageerror", lambda error: errors.messages.append(f"uncaught: {error}"))
    opened.on(
        "console",
        lambda message: errors.messages.append(f"console: {message.text}")
        if message.type == "error" and not _expected_console_error(message.text)
        else None,
    )
    try:
        yield opened
    finally:
        context.close()
    assert not errors.messages, f"the page reported errors: {errors.messages}"


EXPECTED_CONSOLE = (
    re.compile(r"Failed to load resource: the server responded with a status of (401|404|409|422)"),
)
"""Answers the app expects and handles itself (probing optional APIs, refused forms)."""


def _expected_console_error(text: str) -> bool:
    return any(pattern.search(text) for pattern in EXPECTED_CONSOLE)


def take_screenshots(page: Page, name: str) -> None:
    """Save the page at desktop and phone sizes: ``<name>-desktop.png`` and ``<name>-phone.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or DESKTOP
    page.screenshot(path=SCREENSHOTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    page.set_viewport_size(size)


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """``screenshot(page, name)`` saves the page as it is now at both sizes."""
    return take_screenshots
