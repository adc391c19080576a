"""Unit-test apps talk to an in-memory LiveKit, plugged in through ``init_app``'s seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding import LiveKitOnboarding
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit


@pytest.fixture
def make_app(onboarding: LiveKitOnboarding, base_config: dict[str, Any]) -> Iterator[Any]:
    """Build apps on the shared extension, each with its own :class:`FakeLiveKit`.

    ``real_livekit=True`` keeps the real client (for tests of what it does when unreachable).
    """
    apps: list[Flask] = []

    def factory(
        extension: LiveKitOnboarding | None = None, *, real_livekit: bool = False, **config: Any
    ) -> Flask:
        app = Flask(f"host_app_{len(apps)}")
        app.config.update(base_config)
        app.config.update(config)
        livekit = None if real_livekit else FakeLiveKit()
        (extension or onboarding).init_app(app, livekit=livekit)
        if livekit is not None:
            livekit.binding = get_state(app).config.binding
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["livekit_onboarding"].close()


@pytest.fixture
def fake(app: Flask) -> FakeLiveKit:
    """The in-memory LiveKit of ``app``."""
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    return livekit
