"""The organisation's members as an administrator manages them: roles in words, and a role
change the server refuses is not shown as made."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, Route, expect

from .conftest import Account

Browse = Callable[[Account | None], Page]


def test_roles_are_named_in_words_and_a_refused_change_is_undone(
    browse: Browse, new_account: Callable[[str], Account]
) -> None:
    admin = new_account("ada")
    colleague = new_account("cyril")
    page = browse(admin)
    page.goto("/#/settings/account")
    expect(page.locator("#account")).to_contain_text("Administrator")

    page.goto("/#/settings/organisation")
    page.get_by_label("Email of an existing user").fill(str(colleague.email))
    page.locator("#members").get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add member").click()
    chooser = page.get_by_label(f"Role of {colleague.email}")
    expect(chooser).to_have_value("viewer")
    own_row = page.locator("#members tbody tr", has_text=str(admin.email))
    expect(own_row.locator("td").nth(1)).to_have_text("Administrator")

    chooser.select_option("operator")
    expect(page.locator("#members")).to_contain_text(f"{colleague.email} is now an operator.")

    def refuse(route: Route) -> None:
        if route.request.method == "PATCH":
            route.fulfill(
                status=403,
                content_type="application/problem+json",
                body='{"status": 403, "code": "forbidden", "detail": "only administrators change roles"}',
            )
        else:
            route.fallback()

    page.route("**/api/v1/auth/organisations/*/members/*", refuse)
    chooser.select_option("member")
    expect(page.locator("#members")).to_contain_text("You are not allowed to do this.")
    expect(chooser).to_have_value("operator")
