"""Accounts in the browser: sign up and in, passwords, API keys, and one user's jobs kept from another."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from chromaline.common.outbox import outbox_table
from chromaline.common.runtime import ServiceRuntime

Browse = Callable[[Any], Page]
Screenshot = Callable[[Page, str], None]


def test_sign_up_then_create_and_revoke_an_api_key(
    browse: Browse, base_url: str, screenshot: Screenshot
) -> None:
    page = browse(None)
    page.goto("/#/history")
    page.wait_for_url(re.compile(r"#/signin\?next=%2Fhistory"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "signin")

    page.get_by_role("link", name="Create an account").click()
    email = f"dana-{uuid.uuid4().hex[:8]}@example.test"
    page.get_by_label("Your name").fill("Dana Ortiz")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_label("Organisation").fill("Ortiz Reproductions")
    screenshot(page, "signup")
    page.get_by_role("button", name="Create account").click()

    page.wait_for_url(re.compile(r"#/upload"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("link", name="Operator")).to_have_count(0)

    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#account-email")).to_have_text(email)
    settings_pages = page.get_by_role("navigation", name="Settings pages")
    settings_pages.get_by_role("link", name="Organisation").click()
    expect(page.locator("#members")).to_contain_text(email)
    settings_pages.get_by_role("link", name="Notifications").click()
    expect(page.locator("#notifications")).to_contain_text("Tell me when")
    settings_pages.get_by_role("link", name="API keys").click()
    page.get_by_label("Name", exact=True).fill("Studio scanner")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.locator("#api-key-secret")
    expect(secret_box).to_be_focused()
    secret = secret_box.input_value()
    assert secret.startswith("clk_")
    expect(page.get_by_label("Read jobs and results")).to_be_checked()
    expect(page.get_by_label("Administer")).not_to_be_checked()
    row = page.locator("#api-key-rows tr", has_text="Studio scanner")
    expect(row).to_contain_text("read, upload")
    screenshot(page, "settings")

    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}) as client:
        assert client.get("/api/v1/jobs").status_code == 200
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Revoke Studio scanner").click()
        expect(page.locator("#api-key-status")).to_contain_text("Revoked “Studio scanner”.")
        expect(row.get_by_role("button")).to_have_count(0)
        refused = client.get("/api/v1/jobs")
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"#/signin"))
    page.goto("/#/settings")
    page.wait_for_url(re.compile(r"#/signin\?next=%2Fsettings"))


def test_sign_in_and_passwords_explain_themselves(
    browse: Browse, new_account: Callable[[str], Any], web_system: Any, screenshot: Screenshot
) -> None:
    erin = new_account("erin")
    page = browse(None)
    page.goto("/#/signin")
    page.get_by_label("Email").fill(erin.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That did not match. Check what you typed and try again. (wrong email or password)"
    )

    page.get_by_label("Password").fill(erin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"#/upload"))

    page.goto("/#/settings")
    password = page.locator("#password")
    password.get_by_label("Current password").fill("a guess")
    password.get_by_label("New password").fill("a much longer new passphrase")
    password.get_by_role("button", name="Change password").click()
    expect(password.get_by_role("alert")).to_contain_text("(the current password is wrong)")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    password.get_by_label("Current password").fill(erin.password)
    password.get_by_label("New password").fill("a much longer new passphrase")
    password.get_by_role("button", name="Change password").click()
    expect(password.get_by_role("status")).to_have_text("Password changed.")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.get_by_label("Email").fill(erin.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("status")).to_contain_text("If that address has an account")
    screenshot(page, "reset")

    page.goto("/#/reset?token=not-a-real-token")
    page.get_by_label("New password").fill("yet another passphrase")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("alert")).to_contain_text("This reset link has expired or was already used.")

    page.goto(web_system.server.run(reset_link_sent_to(web_system.standalone.runtimes["auth"], erin.email)))
    page.get_by_label("New password").fill("the passphrase from the link")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")

    page.goto("/#/signin")
    page.get_by_label("Email").fill(erin.email)
    page.get_by_label("Password").fill("the passphrase from the link")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"#/upload"))


async def reset_link_sent_to(runtime: ServiceRuntime, email: str) -> str:
    """The link of the last reset e-mail to ``email``, from the event announcing it."""
    table = outbox_table(runtime.name)
    async with runtime.session() as session:
        payloads = (
            await session.execute(
                sa.select(table.c.payload).where(table.c.routing_key == "user.password_reset_requested")
            )
        ).scalars()
        links = [
            str(payload["data"]["reset_url"]) for payload in payloads if payload["data"]["email"] == email
        ]
    return links[-1]


def test_a_second_user_cannot_see_the_first_users_jobs(
    browse: Browse, account: Any, finished_job: dict[str, Any], new_account: Callable[[str], Any]
) -> None:
    alice_page = browse(account)
    alice_page.goto("/#/history")
    expect(alice_page.locator(f"#history-table tr[data-job-id='{finished_job['id']}']")).to_have_count(1)

    bob = new_account("bob")
    page = browse(bob)
    page.goto("/#/history")
    expect(page.locator("#history-count")).to_have_text("0 jobs")
    expect(page.locator("#history-table")).to_have_count(0)

    page.goto(f"/#/jobs/{finished_job['id']}")
    expect(page.get_by_role("alert")).to_contain_text(f"no job {finished_job['id']}")
    page.goto(f"/#/batches/{finished_job['batch_id']}")
    expect(page.get_by_role("alert")).to_contain_text("no batch")

    with bob.client() as client:
        assert client.get(f"/api/v1/jobs/{finished_job['id']}").status_code == 404
        assert client.get(f"/api/v1/jobs/{finished_job['id']}/files/original").status_code == 404


def test_the_password_length_asked_for_is_the_one_the_server_requires(browse: Browse, base_url: str) -> None:
    refused = httpx.post(
        f"{base_url}/api/v1/auth/register",
        json={
            "email": "short@example.test",
            "password": "x" * 8,
            "display_name": "S",
            "organisation_name": "S",
        },
        timeout=30,
    )
    assert refused.json()["code"] == "weak_password", refused.text
    required = int(re.search(r"at least (\d+) characters", refused.json()["detail"]).group(1))  # type: ignore[union-attr]

    page = browse(None)
    registrations: list[str] = []
    page.on(
        "request",
        lambda request: registrations.append(request.url) if "auth/register" in request.url else None,
    )
    page.goto("/#/signup")
    page.get_by_label("Your name").fill("Sam Short")
    page.get_by_label("Email").fill(f"sam-{uuid.uuid4().hex[:8]}@example.test")
    page.get_by_label("Organisation").fill("Short Studio")
    page.get_by_label("Password").fill("p" * (required - 1))
    expect(page.locator("form")).to_contain_text(f"At least {required} characters")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_label("Password").evaluate("field => field.validity.tooShort")
    assert registrations == []
    page.goto("/#/reset?token=some-token")
    assert page.get_by_label("New password").evaluate("field => field.minLength") == required


def _refusals(page: Page) -> list[str]:
    """The API's answers of 400 and above to ``page`` from now on, as ``"<status> <url>"``."""
    refused: list[str] = []
    page.on(
        "response",
        lambda answer: refused.append(f"{answer.status} {answer.url}") if answer.status >= 400 else None,
    )
    return refused


def test_a_signed_out_visit_sends_nothing_the_server_refuses(browse: Browse) -> None:
    """The app used to ask who was signed in with no token to ask with: every visit began with a
    401, which the browser logs as an error."""
    page = browse(None)
    refused = _refusals(page)
    page.goto("/#/history")
    page.wait_for_url(re.compile(r"#/signin"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("link", name="Sign up")).to_be_visible()
    assert refused == []


def test_an_access_token_about_to_expire_is_renewed_before_it_is_sent(
    browse: Browse, new_account: Callable[[str], Any]
) -> None:
    """Signed in through the form, the app knows when its access token expires (``expires_in``) and
    renews it first, where it used to send it, take the 401 and send the request again."""
    frank = new_account("frank")
    page = browse(None)
    page.goto("/#/signin")
    page.get_by_label("Email").fill(frank.email)
    page.get_by_label("Password").fill(frank.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"#/upload"))
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('chromaline.session'))")
    assert stored["renew_at"] > page.evaluate("Date.now()") + 60_000

    # The token is now due for renewal, and a server would refuse it as it stands.
    page.evaluate(
        """() => {
            const tokens = JSON.parse(sessionStorage.getItem('chromaline.session'));
            sessionStorage.setItem('chromaline.session', JSON.stringify(
                { ...tokens, access_token: 'stale', renew_at: Date.now() - 1 }));
        }"""
    )
    refused = _refusals(page)
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    renewed = page.evaluate("JSON.parse(sessionStorage.getItem('chromaline.session'))")
    assert renewed["access_token"] != "stale"
    assert renewed["renew_at"] > page.evaluate("Date.now()")
    assert refused == []


def test_a_refused_access_token_is_renewed_and_the_user_stays_signed_in(
    browse: Browse, new_account: Callable[[str], Any]
) -> None:
    """A token the server refuses (expired by its clock, or kept from before ``renew_at``) is
    renewed with the refresh token. The notification bell, asked on every page, used to take its
    401 as the end of the session and sign the user out."""
    page = browse(new_account("grace"))
    page.goto("/#/upload")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.evaluate(
        """() => {
            const tokens = JSON.parse(sessionStorage.getItem('chromaline.session'));
            sessionStorage.setItem('chromaline.session', JSON.stringify(
                { access_token: 'refused', refresh_token: tokens.refresh_token }));
        }"""
    )
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    page.get_by_role("link", name="Profiles").click()
    expect(page.get_by_role("heading", name="Profiles")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    renewed = page.evaluate("JSON.parse(sessionStorage.getItem('chromaline.session'))")
    assert renewed["access_token"] != "refused"
