"""Fixtures shared by unit and integration tests: app factories over one extension."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding import Identity, LiveKitOnboarding

#: Credentials for unit tests; integration tests override them with the live server's.
UNIT_CONFIG = {
    "TESTING": True,
    "LIVEKIT_URL": "ws://127.0.0.1:9",
    "LIVEKIT_API_KEY": "unit-test-key",
    "LIVEKIT_API_SECRET": "unit-test-secret-that-is-long-enough-for-hs256",
    "SECRET_KEY": "unit-test-flask-session-key",
}

MakeApp = Callable[..., Flask]


class HostUsers:
    """A stand-in for the host app's login: the test sets who is signed in."""

    def __init__(self) -> None:
        self.current: Identity | None = Identity(
            identity="user-1",
            name="Ada Lovelace",
            metadata='{"plan":"pro"}',
            attributes={"role": "customer"},
        )
        self.staff: set[str] = set()


@pytest.fixture
def users() -> HostUsers:
    return HostUsers()


@pytest.fixture
def onboarding(users: HostUsers) -> LiveKitOnboarding:
    """An extension wired like a host app would: login, profile context, staff access."""
    extension = LiveKitOnboarding()

    @extension.identity_loader
    def load_identity() -> Identity | None:
        return users.current

    @extension.context_provider
    def onboarding_context(identity: Identity) -> dict[str, Any]:
        return {"user": identity.identity, "plan": "pro", "locale": "en", "step": "welcome"}

    @extension.room_authorizer
    def staff_may_access(identity: Identity, room: Any, action: str) -> bool:
        return identity.identity in users.staff

    return extension


@pytest.fixture
def base_config() -> dict[str, Any]:
    """The config every app made by ``make_app`` starts from."""
    return dict(UNIT_CONFIG)


@pytest.fixture
def livekit_client() -> Callable[[], Any]:
    """Makes each app's LiveKit client; None is the real one (unit tests plug in a fake)."""
    return lambda: None


@pytest.fixture
def make_app(
    onboarding: LiveKitOnboarding, base_config: dict[str, Any], livekit_client: Callable[[], Any]
) -> Iterator[MakeApp]:
    """Build apps on the shared extension; their LiveKit connections are closed afterwards.

    ``real_livekit=True`` gives an app the real client even where tests plug in a fake.
    """
    apps: list[Flask] = []

    def factory(
        extension: LiveKitOnboarding | None = None, *, real_livekit: bool = False, **config: Any
    ) -> Flask:
        app = Flask(f"host_app_{len(apps)}")
        app.config.update(base_config)
        app.config.update(config)
        livekit = None if real_livekit else livekit_client()
        (extension or onboarding).init_app(app, livekit=livekit)
        if livekit is not None:
            livekit.binding = app.extensions["livekit_onboarding"].config.binding
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["livekit_onboarding"].close()


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    return make_app()
