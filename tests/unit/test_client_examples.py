"""The client guide's two other ways to reach the token endpoint, run as pasted into the quickstart.

A single-page app on another origin (Flask-CORS on the extension's routes, the session cookie
sent along), and a mobile app (its own bearer token read by the ``identity_loader``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from ..docs_code import code_blocks, load_quickstart

SPA_ORIGIN = "https://app.example.com"


@pytest.fixture
def environ() -> Iterator[None]:
    """Whatever the quickstart's ``load_dotenv()`` puts in ``os.environ`` leaves with the test."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("LIVEKIT_", "FLASK_")):
            del os.environ[key]
    os.environ["LIVEKIT_ONBOARDING_ROOM_CREATION"] = "on_join"  # no LiveKit call on the token path
    yield
    os.environ.clear()
    os.environ.update(saved)


def _identity(response_json: dict[str, str]) -> str:
    claims = jwt.decode(response_json["participant_token"], options={"verify_signature": False})
    return str(claims["sub"])


# A single-page app on another origin ------------------------------------------------------


@pytest.fixture
def spa_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: None) -> Flask:
    quickstart = load_quickstart(tmp_path, monkeypatch)
    app: Flask = quickstart.create_app()
    (cors,) = code_blocks("clients", "A single-page app on another origin", "python")
    exec(compile(cors, "docs/clients.md", "exec"), {"app": app})
    return app


def _preflight(client: FlaskClient, path: str, origin: str) -> TestResponse:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_spa_preflight_is_answered_for_its_origin(spa_app: Flask) -> None:
    response = _preflight(spa_app.test_client(), "/livekit/token", SPA_ORIGIN)

    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_spa_credentialed_post_gets_a_token_for_the_signed_in_user(spa_app: Flask) -> None:
    client = spa_app.test_client()
    with client.session_transaction() as session:  # the API's session cookie, as after sign-in
        session["user_id"] = "ada"

    response = client.post("/livekit/token", json={}, headers={"Origin": SPA_ORIGIN})

    assert response.status_code == 201, response.get_json()
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert _identity(response.get_json()) == "ada"


def test_spa_other_origins_and_other_routes_get_no_cors(spa_app: Flask) -> None:
    client = spa_app.test_client()

    other_origin = _preflight(client, "/livekit/token", "https://evil.example")
    assert "Access-Control-Allow-Origin" not in other_origin.headers

    with client.session_transaction() as session:
        session["user_id"] = "ada"
    outside = client.get("/static/missing.css", headers={"Origin": SPA_ORIGIN})
    assert "Access-Control-Allow-Origin" not in outside.headers


# A mobile app -----------------------------------------------------------------------------


@pytest.fixture
def mobile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: None) -> ModuleType:
    (loader,) = code_blocks("clients", "A mobile app", "python")
    return load_quickstart(tmp_path, monkeypatch, before_create="\n\n" + loader)


@pytest.fixture
def mobile_app(mobile: ModuleType) -> Flask:
    app: Flask = mobile.create_app()
    return app


def _api_token(mobile: ModuleType, app: Flask, user_id: str) -> str:
    """What the app's sign-in route hands out, as the client guide says."""
    with app.app_context():
        return str(mobile.api_tokens().dumps(user_id))


def test_mobile_bearer_token_gets_a_token_for_its_user(
    mobile: ModuleType, mobile_app: Flask
) -> None:
    token = _api_token(mobile, mobile_app, "grace")

    response = mobile_app.test_client().post(
        "/livekit/token", json={}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 201, response.get_json()
    assert _identity(response.get_json()) == "grace"
    assert response.get_json()["participant_name"] == "Grace Hopper"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer not-a-token", id="forged"),
        pytest.param("Bearer ", id="empty"),
        pytest.param("Basic YWRhOm9uYm9hcmRpbmc=", id="basic"),
    ],
)
def test_mobile_without_a_valid_bearer_token_is_refused(
    mobile_app: Flask, authorization: str
) -> None:
    response = mobile_app.test_client().post(
        "/livekit/token", json={}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401


def test_mobile_expired_bearer_token_is_refused(
    mobile: ModuleType, mobile_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued_at = time.time() - 2 * 3600  # the guide's loader accepts an hour
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: issued_at)
        token = _api_token(mobile, mobile_app, "ada")

    response = mobile_app.test_client().post(
        "/livekit/token", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


def test_mobile_token_signed_by_another_app_is_refused(
    mobile: ModuleType, mobile_app: Flask
) -> None:
    other = Flask("another_app")
    other.secret_key = "another-secret-key-that-is-long-enough"
    with other.app_context():
        token = mobile.api_tokens().dumps("ada")

    response = mobile_app.test_client().post(
        "/livekit/token", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


def test_mobile_loader_still_accepts_the_web_session(mobile_app: Flask) -> None:
    client = mobile_app.test_client()
    with client.session_transaction() as session:
        session["user_id"] = "ada"

    response = client.post("/livekit/token", json={})

    assert response.status_code == 201, response.get_json()
    assert _identity(response.get_json()) == "ada"
