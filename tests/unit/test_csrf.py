"""Flask-WTF's CSRFProtect app-wide: the docs' CSRF recipes run as pasted into the docs' app."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import FlaskLoginClient
from flask_wtf.csrf import CSRFProtect
from livekit import api
from werkzeug.serving import make_server

from flask_livekit_onboarding import LiveKitOnboarding
from flask_livekit_onboarding.http.blueprint import _METHODS
from flask_livekit_onboarding.testing import FakeLiveKit

from ..conftest import UNIT_CONFIG
from ..docs_code import code_blocks, load_login_app
from .test_webhooks import event_body, sign

SPA_ORIGIN = "https://app.example.com"
API = "https://localhost"  # over HTTPS, where Flask-WTF also checks the Referer
LIVEKIT_CONFIG = {k: v for k, v in UNIT_CONFIG.items() if k.startswith("LIVEKIT_")}


def _docs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Flask]:
    config = {**LIVEKIT_CONFIG, "SECRET_KEY": "docs-app-session-key"}
    module, app = load_login_app(tmp_path, monkeypatch, config, FakeLiveKit())
    app.test_client_class = FlaskLoginClient
    return module, app


@pytest.fixture
def docs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Flask]]:
    module, app = _docs_app(tmp_path, monkeypatch)
    yield module, app
    with app.app_context():
        module.db.engine.dispose()
    app.extensions["livekit_onboarding"].close()


def _signed_in(module: ModuleType, app: Flask, user_id: int = 1) -> FlaskClient:
    with app.app_context():
        user = module.db.session.get(module.User, user_id)
    return app.test_client(user=user)


def _csrf_from_page(client: FlaskClient) -> str:
    page = client.get("/onboarding")
    assert page.status_code == 200
    (token,) = re.findall(
        r'<meta name="csrf-token" content="([^"]+)">', page.get_data(as_text=True)
    )
    return token


def _subject(body: dict[str, Any]) -> str:
    return str(jwt.decode(body["participant_token"], options={"verify_signature": False})["sub"])


def test_a_signed_in_browser_needs_the_token_from_the_meta_tag(
    docs_app: tuple[ModuleType, Flask],
) -> None:
    module, app = docs_app
    client = _signed_in(module, app)

    refused = client.post("/livekit/token", json={})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"] == "The CSRF token is missing."

    csrf_token = _csrf_from_page(client)
    wrong = client.post("/livekit/token", json={}, headers={"X-CSRFToken": csrf_token[:-2]})
    assert wrong.status_code == 400
    assert "CSRF" in wrong.get_json()["error"]["message"]

    issued = client.post("/livekit/token", json={}, headers={"X-CSRFToken": csrf_token})
    assert issued.status_code == 201, issued.get_json()
    body = issued.get_json()
    assert _subject(body) == "1"
    room = f"/livekit/rooms/{body['room_name']}"

    assert client.patch(f"{room}/context", json={"client": {"seen": 1}}).status_code == 400
    assert client.delete(room).status_code == 400
    assert client.get(room).status_code == 200  # reading needs no token
    assert client.delete(room, headers={"X-CSRFToken": csrf_token}).status_code == 204
    assert client.delete(room, headers={"X-CSRFToken": csrf_token}).status_code == 404


def test_staff_end_a_users_session_with_their_own_token(
    docs_app: tuple[ModuleType, Flask],
) -> None:
    module, app = docs_app
    ada = _signed_in(module, app, 1)
    room_name = ada.post(
        "/livekit/token", json={}, headers={"X-CSRFToken": _csrf_from_page(ada)}
    ).get_json()["room_name"]
    grace = _signed_in(module, app, 2)

    ended = grace.delete(
        f"/livekit/rooms/{room_name}", headers={"X-CSRFToken": _csrf_from_page(grace)}
    )

    assert ended.status_code == 204


def test_a_bearer_token_client_needs_no_csrf_token(docs_app: tuple[ModuleType, Flask]) -> None:
    module, app = docs_app
    with app.app_context():
        api_token = module.api_tokens().dumps("1")
    client = app.test_client()

    issued = client.post(
        "/livekit/token", json={}, headers={"Authorization": f"Bearer {api_token}"}
    )
    assert issued.status_code == 201, issued.get_json()
    assert _subject(issued.get_json()) == "1"

    forged = client.post("/livekit/token", json={}, headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401  # no CSRF check, and still nobody is signed in


def test_the_signed_webhook_is_not_asked_for_a_csrf_token(
    docs_app: tuple[ModuleType, Flask],
) -> None:
    module, app = docs_app
    client = _signed_in(module, app)  # a session cookie, as if a browser sent it
    body = event_body("room_started", metadata="")

    accepted = client.post(
        "/livekit/webhook",
        data=body,
        headers={"Authorization": sign(app, body)},
        content_type="application/webhook+json",
    )
    unsigned = client.post("/livekit/webhook", data=body, content_type="application/webhook+json")

    assert accepted.status_code == 200, accepted.get_json()
    assert unsigned.status_code == 401


def _wrong_methods(app: Flask) -> Iterator[tuple[str, str]]:
    """Every extension path with every method it does not serve."""
    paths = {"/livekit/token", "/livekit/webhook", "/livekit/openapi.json"}
    paths |= {"/livekit/rooms/onboarding-x", "/livekit/rooms/onboarding-x/context"}
    paths |= {"/livekit/rooms/onboarding-x/reports", "/livekit/rooms/onboarding-x/invites"}
    paths |= {"/livekit/rooms/onboarding-x/invites/<invite_id>"}
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("livekit_onboarding.") and not rule.endpoint.endswith(
            ("_other_methods", "not_found", "not_found_below")
        ):
            path = rule.rule.replace("<room_name>", "onboarding-x")
            served.setdefault(path, set()).update(rule.methods or ())
    assert set(served) == paths, "a route of the extension is missing here"
    for path in sorted(paths):
        for method in sorted(_METHODS - served[path]):
            yield path, method


def test_every_wrong_method_gets_the_json_405_under_csrfprotect(
    docs_app: tuple[ModuleType, Flask],
) -> None:
    module, app = docs_app
    for client in (app.test_client(), _signed_in(module, app)):
        for path, method in _wrong_methods(app):
            response = client.open(path, method=method, json={})
            assert response.status_code == 405, (method, path, response.status_code)
            assert response.get_json()["error"]["code"] == "method_not_allowed", (method, path)
        unknown = client.post("/livekit/nowhere", json={})
        assert unknown.status_code == 404
        assert unknown.is_json


def test_csrfprotect_set_up_after_the_extension_never_gives_a_500(make_app: Any) -> None:
    """Not handed to the extension, CSRFProtect checks every route itself, in JSON."""
    app = make_app()
    CSRFProtect(app)
    client = app.test_client()
    with client.session_transaction() as session:
        session["signed_in"] = True
    for path, method in _wrong_methods(app):
        response = client.open(path, method=method, json={})
        assert response.status_code in (400, 405), (method, path, response.status_code)
        assert response.is_json, (method, path)
    missing = client.post("/livekit/token", json={})
    assert missing.status_code == 400
    assert missing.get_json()["error"]["message"] == "The CSRF token is missing."


def test_csrfprotect_set_up_first_is_found_without_the_argument(make_app: Any) -> None:
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: "user-1")
    app = Flask("csrf_first")
    app.config.update(UNIT_CONFIG, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    CSRFProtect(app)
    extension.init_app(app)
    client = app.test_client()
    with client.session_transaction() as session:
        session["signed_in"] = True

    assert client.post("/livekit/token", json={}).status_code == 400
    body = event_body("room_started", metadata="")
    webhook = client.post(
        "/livekit/webhook",
        data=body,
        headers={"Authorization": sign(app, body)},
        content_type="application/webhook+json",
    )
    assert webhook.status_code == 200
    app.extensions["livekit_onboarding"].close()


def test_wtf_csrf_enabled_false_turns_the_check_off(docs_app: tuple[ModuleType, Flask]) -> None:
    module, app = docs_app
    app.config["WTF_CSRF_ENABLED"] = False
    assert _signed_in(module, app).post("/livekit/token", json={}).status_code == 201


# A single-page app on another origin ------------------------------------------------------


def _spa(app: Flask) -> Flask:
    (recipe,) = code_blocks("csrf", "A single-page app on another origin", "python")
    exec(compile(recipe, "docs/csrf.md", "exec"), {"app": app})
    return app


def _preflight(client: FlaskClient, path: str, origin: str, headers: str) -> Any:
    return client.options(
        path,
        base_url=API,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_a_page_on_another_origin_fetches_the_csrf_token_and_gets_a_livekit_token(
    docs_app: tuple[ModuleType, Flask],
) -> None:
    module, app = _spa(docs_app[1]) and docs_app
    client = _signed_in(module, app)

    preflight = _preflight(client, "/livekit/token", SPA_ORIGIN, "content-type,x-csrftoken")
    assert preflight.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "x-csrftoken" in allowed and "content-type" in allowed

    fetched = client.get("/csrf-token", base_url=API, headers={"Origin": SPA_ORIGIN})
    assert fetched.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    csrf_token = fetched.get_json()["csrf_token"]

    cross_origin = {"Origin": SPA_ORIGIN, "Referer": f"{SPA_ORIGIN}/onboarding"}
    refused = client.post("/livekit/token", base_url=API, json={}, headers=cross_origin)
    assert refused.status_code == 400
    issued = client.post(
        "/livekit/token",
        base_url=API,
        json={},
        headers={**cross_origin, "X-CSRFToken": csrf_token},
    )
    assert issued.status_code == 201, issued.get_json()
    assert issued.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN


def test_other_origins_get_no_cors_answer(docs_app: tuple[ModuleType, Flask]) -> None:
    module, app = _spa(docs_app[1]) and docs_app
    client = _signed_in(module, app)
    evil = "https://evil.example.net"

    preflight = _preflight(client, "/livekit/token", evil, "content-type,x-csrftoken")
    fetched = client.get("/csrf-token", base_url=API, headers={"Origin": evil})

    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in fetched.headers


def test_agent_starter_react_request_passes_the_preflight_and_gets_a_token() -> None:
    """What agent-starter-react sends when pointed at the endpoint, on a guest deployment."""
    app = Flask("starter_host")
    app.config.update(
        UNIT_CONFIG,
        LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True,
        LIVEKIT_ONBOARDING_ALLOWED_AGENTS=["onboarding-assistant"],
    )
    csrf = CSRFProtect(app)
    livekit = FakeLiveKit()
    LiveKitOnboarding().init_app(app, csrf=csrf, livekit=livekit)
    _spa(app)
    client = app.test_client()

    preflight = _preflight(client, "/livekit/token", SPA_ORIGIN, "content-type,x-sandbox-id")
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "x-sandbox-id" in preflight.headers["Access-Control-Allow-Headers"].lower()

    issued = client.post(
        "/livekit/token",
        base_url=API,
        data='{"room_config":{"agents":[{"agent_name":"onboarding-assistant"}]}}',
        content_type="application/json",
        headers={"Origin": SPA_ORIGIN, "X-Sandbox-Id": ""},
    )
    assert issued.status_code == 201, issued.get_json()
    assert jwt.decode(issued.get_json()["participantToken"], options={"verify_signature": False})
    created = [r for r in livekit.room.requests if isinstance(r, api.CreateRoomRequest)]
    assert [agent.agent_name for agent in created[-1].agents] == ["onboarding-assistant"]
    app.extensions["livekit_onboarding"].close()


# A Python client ---------------------------------------------------------------------------


def test_the_python_client_recipe_gets_a_token_over_http(
    docs_app: tuple[ModuleType, Flask],
) -> None:
    module, app = docs_app
    with app.app_context():
        api_token = module.api_tokens().dumps("1")
    (recipe,) = code_blocks("csrf", "Python clients and scripts", "python")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        namespace: dict[str, Any] = {
            "base": f"http://127.0.0.1:{server.server_port}",
            "api_token": api_token,
        }
        exec(compile(recipe, "docs/csrf.md", "exec"), namespace)
    finally:
        server.shutdown()
        thread.join()
    assert _subject(namespace["body"]) == "1"
    assert namespace["body"]["server_url"] == LIVEKIT_CONFIG["LIVEKIT_URL"]


def test_the_mobile_request_is_served_as_written(docs_app: tuple[ModuleType, Flask]) -> None:
    module, app = docs_app
    with app.app_context():
        api_token = module.api_tokens().dumps("1")
    (request,) = code_blocks("csrf", "Mobile apps", "http")
    head, _, body = request.partition("\n\n")
    request_line, *header_lines = head.splitlines()
    method, path, _ = request_line.split(" ")
    headers = dict(line.split(": ", 1) for line in header_lines)
    headers["Authorization"] = re.sub(
        r"Bearer \S+", f"Bearer {api_token}", headers["Authorization"]
    )
    headers.pop("Host")

    response = app.test_client().open(path, method=method, headers=headers, data=body)

    assert response.status_code == 201, response.get_json()
    assert _subject(response.get_json()) == "1"


def test_the_flask_login_testing_snippet_signs_ada_in(docs_app: tuple[ModuleType, Flask]) -> None:
    module, app = docs_app
    (snippet,) = code_blocks("flask-login", "Testing it", "python")
    namespace: dict[str, Any] = {"app": app, "db": module.db, "User": module.User}
    exec(compile(snippet, "docs/flask-login.md", "exec"), namespace)
    client = namespace["client"]

    csrf_token = _csrf_from_page(client)
    response = client.post("/livekit/token", json={}, headers={"X-CSRFToken": csrf_token})

    assert response.status_code == 201
    assert response.get_json()["participant_name"] == "Ada Lovelace"
