"""Schemathesis drives the app through its own OpenAPI document, served by a real server.

Every operation of ``{prefix}/openapi.json`` gets generated requests (valid and invalid) over
HTTP, against an app on the real livekit-server: no 5xx, every status and body as documented.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from tests.conftest import HostUsers

pytestmark = [
    pytest.mark.integration,
    # live_server forks; Python 3.12+ warns when the test process already runs threads.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:schemathesis"),
]


@pytest.fixture
def app(make_app: Any, users: HostUsers) -> Flask:
    """What ``live_server`` serves: the signed-in user is staff, one agent may be asked for."""
    users.staff.add("user-1")
    app: Flask = make_app(LIVEKIT_ONBOARDING_ALLOWED_AGENTS="helper")
    return app


#: The document the package ships (and serves, with its mount point as ``servers``);
#: loaded at import because schemathesis parametrizes at collection time.
schema = schemathesis.openapi.from_path(
    str(resources.files("flask_livekit_onboarding").joinpath("openapi.json"))
)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_behaves_as_its_openapi_document_says(case: Any, live_server: Any) -> None:
    case.call_and_validate(base_url=live_server.url() + "/livekit")
