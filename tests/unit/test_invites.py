"""Invites and roles without a server: the store contract, configuration and role reading."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import (
    ConfigurationError,
    Identity,
    LiveKitOnboarding,
    ValidationFailed,
    signals,
)
from flask_livekit_onboarding.invite_store import MemoryInviteStore
from flask_livekit_onboarding.invites import INVITE_HEADER
from flask_livekit_onboarding.roles import role_of
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit, check_invite_store


def test_the_in_process_store_keeps_the_contract() -> None:
    check_invite_store(MemoryInviteStore())


def test_a_store_that_forgets_uses_fails_the_contract() -> None:
    class Forgetful(MemoryInviteStore):
        def redeem(self, invite_id: str, identity: str, now: float) -> Any:
            verdict, invite = super().redeem(invite_id, identity, now)
            return ("ok" if verdict in ("again", "used_up") else verdict), invite

    with pytest.raises(AssertionError):
        check_invite_store(Forgetful())


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"LIVEKIT_ONBOARDING_INVITE_TTL": 7200, "LIVEKIT_ONBOARDING_INVITE_MAX_TTL": 3600}, "TTL"),
        ({"LIVEKIT_ONBOARDING_INVITE_URL": "https://app.example.com/join#x"}, "INVITE_URL"),
        ({"LIVEKIT_ONBOARDING_INVITE_URL": "join"}, "INVITE_URL"),
        ({"LIVEKIT_ONBOARDING_MAX_INVITES": 0}, "MAX_INVITES"),
    ],
)
def test_bad_invite_settings_fail_at_init_naming_the_key(
    make_app: Any, config: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        make_app(**config)


def test_a_path_as_invite_page_gives_links_on_the_requests_host(make_app: Any) -> None:
    app: Flask = make_app(LIVEKIT_ONBOARDING_INVITE_URL="/join")
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]

    created = client.post(
        f"/livekit/rooms/{room_name}/invites", json={}, base_url="https://host.example"
    )

    assert created.status_code == 201, created.get_json()
    assert created.get_json()["link"].startswith("https://host.example/join#room=")


def test_guest_invites_need_a_secret_key(make_app: Any) -> None:
    app: Flask = make_app()
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]
    app.secret_key = None

    refused = client.post(f"/livekit/rooms/{room_name}/invites", json={"guests": True})

    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "guests"


def test_roles_are_read_from_the_server_attribute_or_the_agent_kind() -> None:
    owner = api.ParticipantInfo(identity="ada", attributes={"onboarding.role": "owner"})
    agent = api.ParticipantInfo(identity="agent-1", kind=api.ParticipantInfo.Kind.AGENT)
    stranger = api.ParticipantInfo(identity="x", attributes={"onboarding.role": "king"})

    assert [role_of(p) for p in (owner, agent, stranger)] == ["owner", "agent", None]


def test_codes_never_reach_logs_signals_or_errors(
    make_app: Any, users: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    app: Flask = make_app()
    seen: list[dict[str, Any]] = []
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]
    with (
        signals.invite_created.connected_to(lambda s, **kw: seen.append(kw), app),
        signals.invite_redeemed.connected_to(lambda s, **kw: seen.append(kw), app),
    ):
        code = client.post(f"/livekit/rooms/{room_name}/invites", json={}).get_json()["code"]
        users.current = Identity("user-2", "Grace Hopper")
        joined = client.post(
            "/livekit/token", json={"room_name": room_name}, headers={INVITE_HEADER: code}
        )
        wrong = client.post(
            "/livekit/token", json={"room_name": "onboarding-x"}, headers={INVITE_HEADER: code}
        )

    assert joined.status_code == 201
    assert wrong.get_json()["error"]["code"] == "invite_wrong_room"
    secret = code.split(".")[1]
    for text in (caplog.text, repr(seen), wrong.get_data(as_text=True)):
        assert secret not in text
    assert [kw["invite_id"] for kw in seen] == [code.split(".")[0]] * 2


def test_a_host_store_is_plugged_in_at_init_app(
    onboarding: LiveKitOnboarding, base_config: dict[str, Any]
) -> None:
    store = MemoryInviteStore()
    app = Flask("host")
    app.config.update(base_config)
    onboarding.init_app(app, livekit=FakeLiveKit(), invite_store=store)
    try:
        assert get_state(app).invites is store
    finally:
        get_state(app).close()


def test_demo_guests_need_an_invite_open_to_guests(
    base_config: dict[str, Any], livekit_client: Any
) -> None:
    extension = LiveKitOnboarding()  # no identity_loader: every visitor is a demo guest
    app = Flask("demo")
    app.config.update(base_config, LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True)
    extension.init_app(app, livekit=livekit_client())
    get_state(app).livekit.binding = get_state(app).config.binding  # type: ignore[attr-defined]
    try:
        owner = app.test_client()
        room_name = owner.post("/livekit/token", json={}).get_json()["room_name"]
        path = f"/livekit/rooms/{room_name}/invites"
        members_only = owner.post(path, json={}).get_json()["code"]
        open_to_guests = owner.post(path, json={"guests": True, "label": "Grace"}).get_json()

        def join(code: str) -> Any:
            return app.test_client().post(
                "/livekit/token", json={"room_name": room_name}, headers={INVITE_HEADER: code}
            )

        refused, admitted = join(members_only), join(open_to_guests["code"])
        assert refused.status_code == 401
        assert admitted.status_code == 201
        assert admitted.get_json()["participant_name"] == "Grace"
    finally:
        get_state(app).close()


def test_agents_read_roles_without_flask() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('flask', 'werkzeug', 'blinker', 'livekit'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from types import SimpleNamespace\n"
        "from flask_livekit_onboarding.roles import invited_by, role_of\n"
        "p = SimpleNamespace(kind=0, attributes={'onboarding.role': 'viewer',\n"
        "                                        'onboarding.invited_by': 'Ada'})\n"
        "print(role_of(p), invited_by(p))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "viewer Ada"


@pytest.mark.parametrize(
    "form",
    [
        {"data": ""},
        {"data": "role=viewer", "content_type": "application/x-www-form-urlencoded"},
        {"data": "", "content_type": "text/plain"},
    ],
)
def test_a_cross_site_form_cannot_create_invites(make_app: Any, form: dict[str, Any]) -> None:
    app: Flask = make_app()
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]

    refused = client.post(f"/livekit/rooms/{room_name}/invites", **form)

    assert refused.status_code == 415
    assert refused.get_json()["error"]["code"] == "unsupported_media_type"
    listed = client.get(f"/livekit/rooms/{room_name}/invites").get_json()
    assert listed == {"invites": []}


def test_the_owner_is_told_to_join_without_their_own_invite(make_app: Any) -> None:
    app: Flask = make_app()
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]
    code = client.post(f"/livekit/rooms/{room_name}/invites", json={}).get_json()["code"]

    refused = client.post(
        "/livekit/token", json={"room_name": room_name}, headers={INVITE_HEADER: code}
    )

    assert refused.status_code == 403
    assert "your own session" in refused.get_json()["error"]["message"]
    listed = client.get(f"/livekit/rooms/{room_name}/invites").get_json()["invites"]
    assert [invite["uses"] for invite in listed] == [0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ttl": "60"}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"ttl": 0}, "ttl"),
        ({"max_uses": 1.5}, "max_uses"),
        ({"max_uses": 101}, "max_uses"),
        ({"guests": "yes"}, "guests"),
        ({"role": None}, "role"),
        ({"role": ["viewer"]}, "role"),
        ({"label": "x" * 101}, "label"),
        ({"label": "a\nb"}, "label"),
        ({"label": "\ud800"}, "label"),
        ({"label": 7}, "label"),
    ],
)
def test_bad_invite_options_are_a_422_naming_the_field(
    make_app: Any, body: dict[str, Any], field: str
) -> None:
    app: Flask = make_app()
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]

    refused = client.post(f"/livekit/rooms/{room_name}/invites", json=body)

    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["error"]["field"] == field


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 601},
        {"ttl": "60"},
        {"max_uses": 0},
        {"role": "owner"},
        {"label": "a\nb"},
        {"guests": "yes"},
        {"role": "owner", "guests": "yes"},
    ],
)
def test_the_host_gets_the_422_the_route_answers_for_a_bad_option(
    make_app: Any, onboarding: LiveKitOnboarding, options: dict[str, Any]
) -> None:
    app: Flask = make_app(LIVEKIT_ONBOARDING_INVITE_TTL=300, LIVEKIT_ONBOARDING_INVITE_MAX_TTL=600)
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]
    refused = client.post(f"/livekit/rooms/{room_name}/invites", json=options)

    with pytest.raises(ValidationFailed) as raised:
        onboarding.create_invite(room_name, app=app, **options)

    assert refused.status_code == 422
    assert raised.value.to_dict() == refused.get_json()
    if "ttl" in options:
        assert "from 1 to 600" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "header",
    ["", " ", "a.b", "é" * 56, "x" * 10_000, "%00", "A" * 12 + "." + "A" * 43 + "\t"],
)
def test_odd_invite_headers_get_a_json_4xx(make_app: Any, header: str) -> None:
    app: Flask = make_app()
    response = app.test_client().post(
        "/livekit/token",
        json={"room_name": "onboarding-x"},
        headers={INVITE_HEADER: header.encode("utf-8").decode("latin-1")},
    )
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]["code"] in {"invite_malformed", "invite_not_found"}


@pytest.mark.parametrize(
    "path", ["/invites/", "/invites/%00", "/invites/" + "i" * 5000, "/invites/a/b"]
)
def test_odd_invite_paths_get_a_json_4xx(make_app: Any, path: str) -> None:
    app: Flask = make_app()
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]
    for method in ("GET", "POST", "DELETE", "PUT"):
        response = client.open(f"/livekit/rooms/{room_name}{path}", method=method, json={})
        assert 400 <= response.status_code < 500, (method, path)
        assert response.is_json, (method, path)
