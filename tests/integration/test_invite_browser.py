"""The demo page's invite flow in a real browser: the owner invites, a second browser joins.

Two browser contexts (two people, each with their own cookies) open the demo app: the owner
starts a session and clicks "Invite someone"; the invitee opens the link, joins the same room,
and both pages show both people with their roles, while the example agent greets the invitee.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.agent_support import (
    AGENT_NAME,
    agent_worker,  # noqa: F401 (fixture)
)
from tests.integration.test_demo_browser import (
    TIMEOUT_MS,
    browser,  # noqa: F401 (fixture)
    screenshot,
    serve,  # noqa: F401 (fixture)
    start_onboarding,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def people(browser: Any) -> Iterator[Any]:  # noqa: F811
    """Opens a page in a browser context of its own: another person, with their own cookies."""
    contexts: list[Any] = []

    def open_page(url: str) -> Any:
        context = browser.new_context(viewport={"width": 1000, "height": 760})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        page.goto(url)
        return page

    yield open_page
    for context in contexts:
        context.close()


def person(page: Any, name: str) -> Any:
    return page.locator("#participants li", has_text=name)


@pytest.mark.usefixtures("agent_worker")
def test_an_invitee_opens_the_link_joins_and_both_pages_show_who_is_who(
    base_config: dict[str, Any],
    people: Any,
    serve: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    from examples.minimal.app import create_app

    app = create_app(
        {
            **base_config,
            "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS": True,
            "LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY": True,  # as in the demo: guests give a name
            "LIVEKIT_ONBOARDING_AGENT_NAME": AGENT_NAME,
        }
    )
    ada = people(serve(app) + "/")
    ada.get_by_placeholder("Your name (optional)").fill("Ada")
    room_name = start_onboarding(ada)
    expect(person(ada, "Ada")).to_have_attribute("data-role", "owner")
    expect(person(ada, "Onboarding assistant")).to_have_attribute("data-role", "agent")

    ada.get_by_role("button", name="Invite someone").click()
    link = ada.locator("#invite-link")
    expect(link).to_be_visible()
    url = link.get_attribute("href") or ""
    assert "#room=" in url and "invite=" in url

    grace = people(url)
    expect(grace.get_by_role("button", name="Join the session")).to_be_visible()
    assert "invite=" not in grace.url  # the code leaves the address bar once read
    grace.get_by_placeholder("Your name (optional)").fill("Grace")
    assert start_onboarding(grace, button="Join the session") == room_name

    for page in (ada, grace):
        expect(person(page, "Ada")).to_have_attribute("data-role", "owner")
        expect(person(page, "Grace")).to_have_attribute("data-role", "participant")
        expect(person(page, "Grace").locator(".tag.role")).to_have_text("participant")
        expect(page.locator("#participant-count")).to_have_text("3")
    expect(grace.locator("#invite-box")).to_be_hidden()
    greeting = grace.locator('#chat li[data-from="agent"]', has_text="invited you")
    expect(greeting).to_contain_text("Hi Grace — Ada invited you to their onboarding")
    screenshot(ada, "demo-invite-owner.png")
    screenshot(grace, "demo-invite-invitee.png")

    # The link admits one person: a third browser is told so, and joins nothing.
    late = people(url)
    late.get_by_role("button", name="Join the session").click()
    expect(late.locator("#error")).to_contain_text("used as many times as it allows")
    expect(late.locator("#session")).to_be_hidden()
    assert ada.errors == [] and grace.errors == []
