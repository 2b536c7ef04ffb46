"""The web app in real headless Chromium, against the whole system started in this process.

The system is the one-process standalone (embedded PostgreSQL in a temporary folder, in-memory
bus, blobs in a folder) served by uvicorn on 127.0.0.1. Chromium is Debian's package, driven by
Playwright; the tests never install a browser. Screenshots land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FileChooser,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from chromaline.auth.accounts import user_by_email
from chromaline.auth.platform import set_platform_operator
from chromaline.cli.processes import free_port, wait_ready
from chromaline.cli.standalone import BackgroundServer, Standalone
from chromaline.common.bus.memory import MemoryBus
from chromaline.common.runtime import ServiceRuntime
from chromaline.common.testing.services import missing_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
SCREENSHOTS = Path(__file__).resolve().parents[4] / "artifacts" / "screenshots"


@dataclass
class WebSystem:
    url: str
    standalone: Standalone
    server: BackgroundServer

    def publish_raw(self, routing_key: str, body: bytes) -> str:
        """Put bytes on the in-process bus from the test's thread; the message id."""
        bus = self.standalone.bus
        assert isinstance(bus, MemoryBus)
        return self.server.run(bus.publish_raw(routing_key, body), timeout=10)


@pytest.fixture(scope="session")
def web_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebSystem]:
    """The gateway, with every service behind it, on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("web-system")
    overrides: dict[str, Any] = {
        "bus_url": f"memory://web-{uuid.uuid4().hex[:8]}",
        "database_url": f"embedded://{root / 'postgres'}",
        "blob_url": f"file://{root / 'blobs'}",
    }
    port = free_port()
    system = Standalone.build(overrides)
    auth_settings = system.runtimes["auth"].settings
    system.runtimes["auth"].settings = auth_settings.model_copy(
        # every test user signs up from 127.0.0.1
        update={"public_base_url": f"http://127.0.0.1:{port}", "sign_up_max_per_address": 1000}
    )
    with BackgroundServer(system.gateway_app(), "127.0.0.1", port) as server:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield WebSystem(url, system, server)


@pytest.fixture(scope="session")
def base_url(web_system: WebSystem) -> str:
    return web_system.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module: Playwright's sync API keeps an event loop running in this
    thread while it is open, which must end before later tests call ``asyncio.run``."""
    if not CHROMIUM.exists():
        missing_service(
            "chromium", f"{CHROMIUM} is missing; install Debian's package: apt-get install -y chromium"
        )
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


@dataclass
class Account:
    """Who the tests act as: a registered user once the gateway has accounts, nobody before."""

    base_url: str
    email: str | None = None
    password: str | None = None
    tokens: dict[str, str] | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"} if self.tokens else {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers(), timeout=60)


def register(base_url: str, name: str) -> Account | None:
    """A new user in a new organisation; None when the gateway has no accounts."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
    password = f"pass-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{base_url}/api/v1/auth/register",
        json={
            "email": email,
            "password": password,
            "display_name": name.title(),
            "organisation_name": f"{name.title()} Studio",
        },
        timeout=30,
    )
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    body = answer.json()
    tokens = {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}
    return Account(base_url, email, password, tokens)


@pytest.fixture(scope="session")
def account(base_url: str) -> Account:
    return register(base_url, "alice") or Account(base_url)


async def _grant_platform_role(runtime: ServiceRuntime, email: str) -> None:
    async with runtime.session() as session, session.begin():
        user = await user_by_email(session, email)
        await set_platform_operator(session, user, True, actor_id=None, client_address="test")


@pytest.fixture(scope="session")
def platform_account(web_system: WebSystem) -> Account:
    """A platform operator (the role ``chromaline platform grant`` gives), signed in afresh."""
    made = register(web_system.url, "olga")
    assert made is not None
    assert made.email is not None
    assert made.tokens is not None
    web_system.server.run(_grant_platform_role(web_system.standalone.runtimes["auth"], made.email))
    refreshed = httpx.post(
        f"{web_system.url}/api/v1/auth/refresh",
        json={"refresh_token": made.tokens["refresh_token"]},
        timeout=30,
    ).raise_for_status()
    body = refreshed.json()
    made.tokens = {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}
    return made


def open_context(browser: Browser, base_url: str, account: Account | None) -> BrowserContext:
    """A fresh browser profile; signed in as ``account`` (its tokens put where the app keeps them)."""
    context = browser.new_context(base_url=base_url, viewport=DESKTOP, accept_downloads=True)
    if account is not None and account.tokens:
        session = json.dumps(json.dumps(account.tokens))
        context.add_init_script(
            f"if (!sessionStorage.getItem('chromaline.session')) sessionStorage.setItem('chromaline.session', {session});"
        )
    return context


def _watch(opened: Page) -> PageErrors:
    errors = PageErrors()
    opened.on("pageerror", lambda error: errors.messages.append(f"uncaught: {error}"))
    opened.on(
        "console",
        lambda message: (
            errors.messages.append(f"console: {message.text}")
            if message.type == "error" and not _expected_console_error(message.text)
            else None
        ),
    )
    return errors


def _chosen_by_the_test(chooser: FileChooser) -> None:
    """Listening from the start has Playwright intercept the page's file choosers before any test
    opens one: it starts intercepting with its first listener, asynchronously, so a chooser opened
    by a key press right after ``expect_file_chooser`` could otherwise open unseen on a busy machine.
    The test that opens it sets its files."""


@pytest.fixture
def browse(browser: Browser, base_url: str) -> Iterator[Callable[[Account | None], Page]]:
    """``browse(account)``: a new page in a browser profile of its own, signed in as ``account``
    (None: signed out). The test fails if any of these pages reports a script error."""
    opened: list[tuple[BrowserContext, PageErrors]] = []

    def open_page(account: Account | None) -> Page:
        context = open_context(browser, base_url, account)
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.on("filechooser", _chosen_by_the_test)
        opened.append((context, _watch(page)))
        return page

    yield open_page
    for context, _ in opened:
        context.close()
    errors = [message for _, seen in opened for message in seen.messages]
    assert not errors, f"the page reported errors: {errors}"


@pytest.fixture
def page(browse: Callable[[Account | None], Page], account: Account) -> Page:
    """A page signed in as ``account``."""
    return browse(account)


@pytest.fixture
def new_account(base_url: str) -> Callable[[str], Account]:
    """``new_account(name)``: a user registered through the API, with an organisation of its own."""

    def create(name: str) -> Account:
        created = register(base_url, name)
        if created is None:
            pytest.fail("the gateway has no /api/v1/auth routes")
        return created

    return create


EXPECTED_CONSOLE = (
    re.compile(r"Failed to load resource: the server responded with a status of (4\d\d|503)"),
)
"""Refusals the app expects and shows itself (probing optional APIs, refused uploads, sign-in), and
a dependency briefly down (503), which the app sends again."""


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


@pytest.fixture(scope="session")
def chart_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated photo of a ColorChecker Classic under a random light, as a JPEG file."""
    from chromaline.engine.synthetic import render_scene

    path = tmp_path_factory.mktemp("photos") / "studio-shot.jpg"
    path.write_bytes(render_scene(11, chart="classic24", size=(2000, 1500)).image_bytes)
    return path


@pytest.fixture(scope="session")
def blank_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated photo with no chart in it."""
    from chromaline.engine.synthetic import render_scene

    path = tmp_path_factory.mktemp("photos") / "no-chart.jpg"
    path.write_bytes(render_scene(12, chart=None, size=(1200, 900)).image_bytes)
    return path


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once it has ended and its report, if one is coming, is made or has failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
        if job["state"] in ("done", "failed") and (job["report"] or {}).get("state") != "pending":
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} not finished within {timeout:.0f} s")


def save_profile(account: Account, job_id: str, name: str) -> str:
    """A profile saved through the API from a finished job; its id."""
    with account.client() as client:
        saved = client.post("/api/v1/profiles", json={"job_id": job_id, "name": name})
        profile_id: str = saved.raise_for_status().json()["id"]
    return profile_id


@pytest.fixture(scope="session")
def finished_job(account: Account, chart_photo: Path) -> dict[str, Any]:
    """A job uploaded through the API and corrected, for pages that list or reuse results."""
    with account.client() as client:
        batch = client.post(
            "/api/v1/jobs", files={"files": ("archive-shot.jpg", chart_photo.read_bytes(), "image/jpeg")}
        )
        batch.raise_for_status()
        job = wait_for_job(client, batch.json()["jobs"][0]["id"])
    assert job["state"] == "done", job
    return job
