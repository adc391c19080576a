"""Unit-test apps talk to an in-memory LiveKit, plugged in through ``init_app``'s seam."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit


@pytest.fixture
def livekit_client() -> Callable[[], Any]:
    """Unit-test apps get an in-memory LiveKit each, plugged in through ``init_app``."""
    return FakeLiveKit


@pytest.fixture
def fake(app: Flask) -> FakeLiveKit:
    """The in-memory LiveKit of ``app``."""
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    return livekit
