"""``flask livekit`` commands through the app's CLI runner, with LiveKit stubbed."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from click.testing import Result
from flask import Flask
from livekit import api

from flask_livekit_onboarding import LiveKitTimeout, LiveKitUnavailable, signals
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit
from tests.conftest import UNIT_CONFIG
from tests.metadata import decode_metadata

KEY = UNIT_CONFIG["LIVEKIT_API_KEY"]
SECRET = UNIT_CONFIG["LIVEKIT_API_SECRET"]


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["livekit", *args])


def claims(token: str) -> api.access_token.Claims:
    return api.TokenVerifier(KEY, SECRET).verify(token)


def assert_no_secret(result: Result) -> None:
    assert SECRET not in result.output
    assert SECRET not in result.stderr


# --- token -------------------------------------------------------------------------------------


def test_token_starts_a_new_room_and_prints_only_the_token(app: Flask, fake: FakeLiveKit) -> None:
    result = run(app, "token", "--identity", "ada", "--name", "Ada Lovelace")

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    granted = claims(token)
    assert granted.identity == "ada"
    assert granted.name == "Ada Lovelace"
    assert granted.video is not None and granted.video.room_join
    room_name = granted.video.room
    assert room_name.startswith("onboarding-")
    record = decode_metadata(fake.room.rooms[room_name].metadata)
    assert record is not None
    assert (record["owner"], record["context"]) == ("ada", {})
    assert f"room: {room_name}" in result.stderr
    assert "server_url: ws://127.0.0.1:9" in result.stderr
    assert_no_secret(result)


def test_token_context_option_becomes_the_room_context(app: Flask, fake: FakeLiveKit) -> None:
    result = run(app, "token", "--identity", "ada", "--context", '{"step": "welcome"}')

    room_name = claims(result.stdout.strip()).video.room  # type: ignore[union-attr]
    assert decode_metadata(fake.room.rooms[room_name].metadata)["context"] == {  # type: ignore[index]
        "step": "welcome"
    }


@pytest.mark.parametrize("context", ["{not json", "[1, 2]"])
def test_token_refuses_a_context_that_is_not_a_json_object(
    app: Flask, fake: FakeLiveKit, context: str
) -> None:
    result = run(app, "token", "--identity", "ada", "--context", context)

    assert result.exit_code == 2
    assert "--context" in result.stderr
    assert fake.room.rooms == {}


def test_token_json_matches_the_token_endpoint_response(app: Flask, fake: FakeLiveKit) -> None:
    result = run(app, "token", "--identity", "ada", "--json")

    body = json.loads(result.stdout)
    assert set(body) == {
        "server_url",
        "participant_token",
        "serverUrl",
        "participantToken",
        "room_name",
        "participant_name",
        "resumed",
    }
    assert body["server_url"] == "ws://127.0.0.1:9"
    assert body["participant_name"] == "ada"
    assert claims(body["participant_token"]).video.room == body["room_name"]  # type: ignore[union-attr]


def test_token_ttl_defaults_to_the_config_and_can_be_shortened(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_TOKEN_TTL=600)

    default = jwt.decode(run(app, "token", "--identity", "ada").stdout.strip(), SECRET, ["HS256"])
    short = jwt.decode(
        run(app, "token", "--identity", "ada", "--ttl", "60").stdout.strip(), SECRET, ["HS256"]
    )

    assert default["exp"] - default["nbf"] == 600
    assert short["exp"] - short["nbf"] == 60
    assert run(app, "token", "--identity", "ada", "--ttl", "0").exit_code == 2


def test_token_for_an_existing_room_joins_it(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("onboarding-live", owner="ada")

    result = run(app, "token", "--identity", "staff-1", "--room", "onboarding-live")

    assert result.exit_code == 0
    assert claims(result.stdout.strip()).video.room == "onboarding-live"  # type: ignore[union-attr]
    assert list(fake.room.rooms) == ["onboarding-live"]


@pytest.mark.parametrize("room", ["onboarding-gone", "standup"])
def test_token_for_an_unknown_or_foreign_room_fails(
    app: Flask, fake: FakeLiveKit, room: str
) -> None:
    fake.add_room("standup", owner=None)

    result = run(app, "token", "--identity", "ada", "--room", room)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"No onboarding room named {room!r}" in result.stderr


def test_token_in_on_join_mode_puts_the_room_in_the_token(make_app: Any) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join", LIVEKIT_ONBOARDING_AGENT_NAME="guide"
    )
    fake = get_state(app).livekit

    token = run(app, "token", "--identity", "ada").stdout.strip()

    config = jwt.decode(token, SECRET, ["HS256"])["roomConfig"]
    assert config["name"] == claims(token).video.room  # type: ignore[union-attr]
    assert decode_metadata(config["metadata"])["owner"] == "ada"  # type: ignore[index]
    assert [a["agentName"] for a in config["agents"]] == ["guide"]
    assert fake.calls == 0


def test_token_sends_room_created_and_token_issued(app: Flask, fake: FakeLiveKit) -> None:
    created: list[dict[str, Any]] = []
    issued: list[dict[str, Any]] = []

    with (
        signals.room_created.connected_to(lambda s, **kw: created.append(kw), app),
        signals.token_issued.connected_to(lambda s, **kw: issued.append(kw), app),
    ):
        result = run(app, "token", "--identity", "ada", "--ttl", "120")

    room_name = claims(result.stdout.strip()).video.room  # type: ignore[union-attr]
    assert [(c["room_name"], c["identity"].identity, c["mode"]) for c in created] == [
        (room_name, "ada", "eager")
    ]
    assert [(i["room_name"], i["expires_in"]) for i in issued] == [(room_name, 120)]


@pytest.mark.parametrize("identity", ["", "x" * 257])
def test_token_refuses_bad_identities(app: Flask, fake: FakeLiveKit, identity: str) -> None:
    result = run(app, "token", "--identity", identity)

    assert result.exit_code == 2
    assert "--identity" in result.stderr
    assert fake.room.rooms == {}


def test_token_requires_an_identity(app: Flask, fake: FakeLiveKit) -> None:
    result = run(app, "token")

    assert result.exit_code == 2
    assert "--identity" in result.stderr


# --- rooms -------------------------------------------------------------------------------------


def test_rooms_lists_onboarding_rooms_newest_first_with_users_and_agents(
    app: Flask, fake: FakeLiveKit
) -> None:
    now = int(time.time())
    standard, agent = api.ParticipantInfo.Kind.STANDARD, api.ParticipantInfo.Kind.AGENT
    fake.add_room("onboarding-old", owner="ada", created_at=now - 7500)
    fake.add_room(
        "onboarding-new",
        owner="grace",
        created_at=now - 125,
        participants=[("grace", "Grace", standard), ("agent-1", "Guide", agent)],
    )
    fake.room.rooms["onboarding-new"].num_participants = 0  # LiveKit's summary lags
    fake.add_room("standup", owner=None)

    result = run(app, "rooms")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ROOM", "OWNER", "USERS", "AGENTS", "AGE", "STEP", "OUTCOME"]
    assert lines[1].split()[:4] == ["onboarding-new", "grace", "1", "1"]
    assert lines[1].split()[4] in ("2m05s", "2m06s")
    assert lines[2].split() == ["onboarding-old", "ada", "0", "0", "2h05m", "-", "-"]
    assert len(lines) == 3
    assert lines[2].index("ada") == lines[0].index("OWNER")


def test_rooms_limit_shows_the_newest_and_says_how_many_more(app: Flask, fake: FakeLiveKit) -> None:
    now = int(time.time())
    for age in range(5):
        fake.add_room(f"onboarding-{age}", owner="ada", created_at=now - age * 60)

    lines = run(app, "rooms", "--limit", "2").stdout.splitlines()

    assert [line.split()[0] for line in lines[1:3]] == ["onboarding-0", "onboarding-1"]
    assert lines[-1] == "3 more not shown (--limit)."


def test_rooms_escape_control_characters_in_what_they_print(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("onboarding-x", owner="eve\n\x1b[2Jfake-row")

    output = run(app, "rooms").stdout

    assert "\x1b" not in output and output.count("\n") == 2
    assert "eve\\n\\x1b[2Jfake-row" in output


def test_rooms_says_when_there_are_none(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("standup", owner=None)

    result = run(app, "rooms")

    assert result.exit_code == 0
    assert result.stdout.strip() == "No onboarding rooms are live."


def test_rooms_json(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("onboarding-a", owner="ada", created_at=int(time.time()) - 30)

    rows = json.loads(run(app, "rooms", "--json").stdout)

    assert [(r["room_name"], r["owner"], r["users"], r["agents"]) for r in rows] == [
        ("onboarding-a", "ada", 0, 0)
    ]
    assert rows[0]["session_id"]
    assert 30 <= rows[0]["age_seconds"] <= 32


def test_rooms_reports_an_unreachable_livekit(app: Flask, fake: FakeLiveKit) -> None:
    fake.fail_with = LiveKitUnavailable()

    result = run(app, "rooms")

    assert result.exit_code == 1
    assert "Cannot reach LiveKit at ws://127.0.0.1:9" in result.stderr


# --- end ---------------------------------------------------------------------------------------


def test_end_deletes_the_room_and_sends_session_ended(app: Flask, fake: FakeLiveKit) -> None:
    kind = api.ParticipantInfo.Kind.STANDARD
    fake.add_room("onboarding-a", participants=[("ada", "Ada", kind)])
    ended: list[dict[str, Any]] = []

    with signals.session_ended.connected_to(lambda s, **kw: ended.append(kw), app):
        result = run(app, "end", "onboarding-a")

    assert result.exit_code == 0
    assert result.stdout.startswith("Ended onboarding-a")
    assert fake.room.rooms == {}
    assert [(e["room_name"], e["identity"]) for e in ended] == [("onboarding-a", None)]
    assert ended[0]["session_id"]


@pytest.mark.parametrize("room", ["onboarding-gone", "standup"])
def test_end_unknown_or_foreign_room_fails(app: Flask, fake: FakeLiveKit, room: str) -> None:
    fake.add_room("standup", owner=None)

    result = run(app, "end", room)

    assert result.exit_code == 1
    assert f"No onboarding room named {room!r}" in result.stderr
    assert "standup" in fake.room.rooms


def test_end_of_a_room_that_closes_meanwhile_fails_cleanly(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("onboarding-a")
    fake.room.vanish_after_lookup = True

    result = run(app, "end", "onboarding-a")

    assert result.exit_code == 1
    assert "No onboarding room named 'onboarding-a'" in result.stderr


# --- check -------------------------------------------------------------------------------------


def test_check_reports_the_server_and_its_rooms(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("onboarding-a")
    fake.add_room("standup", owner=None)

    result = run(app, "check", "--timeout", "2")

    assert result.exit_code == 0, result.output
    assert f"LiveKit at ws://127.0.0.1:9 accepted API key {KEY!r}" in result.stdout
    assert "2 room(s) live, 1 of them onboarding rooms" in result.stdout
    assert fake.timeouts == [2.0]
    assert_no_secret(result)


def test_check_names_the_public_url_when_it_differs(make_app: Any) -> None:
    app = make_app(LIVEKIT_PUBLIC_URL="https://rt.example.com")

    result = run(app, "check")

    assert result.exit_code == 0
    assert "Clients are sent to wss://rt.example.com." in result.stdout


def test_check_fails_when_livekit_is_unreachable(make_app: Any) -> None:
    app = make_app(real_livekit=True)
    result = run(app, "check", "--timeout", "2")

    assert result.exit_code == 1
    assert "Cannot reach LiveKit at ws://127.0.0.1:9" in result.stderr
    assert "LIVEKIT_URL" in result.stderr
    assert result.stdout == ""
    assert_no_secret(result)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            api.TwirpError(api.TwirpErrorCode.UNAUTHENTICATED, "invalid token", status=401),
            "refused the credentials: LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
        ),
        (LiveKitTimeout(), "did not answer within 5s"),
        (
            api.TwirpError(api.TwirpErrorCode.BAD_ROUTE, "no route", status=404),
            "refused the request (bad_route)",
        ),
    ],
)
def test_check_explains_what_went_wrong(
    app: Flask, fake: FakeLiveKit, failure: Exception, message: str
) -> None:
    fake.fail_with = failure

    result = run(app, "check")

    assert result.exit_code == 1
    assert message in result.stderr
    assert_no_secret(result)


@pytest.mark.parametrize(
    ("key", "value"),
    [("LIVEKIT_API_SECRET", ""), ("LIVEKIT_URL", "ftp://livekit.example.com")],
)
def test_check_fails_on_invalid_configuration(
    app: Flask, fake: FakeLiveKit, key: str, value: str
) -> None:
    app.config[key] = value

    result = run(app, "check")

    assert result.exit_code == 1
    assert "Configuration is invalid" in result.stderr
    assert key in result.stderr
    assert fake.calls == 0


def test_commands_are_registered_per_app(make_app: Any) -> None:
    first = make_app(LIVEKIT_URL="ws://127.0.0.1:9")
    second = make_app(LIVEKIT_URL="ws://127.0.0.2:9")

    assert "ws://127.0.0.1:9" in run(first, "check").stdout
    assert "ws://127.0.0.2:9" in run(second, "check").stdout


def test_check_warns_when_webhook_dedupe_is_per_process(app: Flask, fake: FakeLiveKit) -> None:
    result = run(app, "check")

    assert result.exit_code == 0
    assert "in-process" in result.stderr and "LIVEKIT_ONBOARDING_REDIS_URL" in result.stderr


def test_check_names_a_shared_dedupe_store_without_its_password(make_app: Any) -> None:
    pytest.importorskip("redis")
    app = make_app(LIVEKIT_ONBOARDING_REDIS_URL="redis://:hunter2@127.0.0.1:6399/1")

    result = run(app, "check")

    assert "shared (RedisDedupe, redis://127.0.0.1:6399/1)" in result.stdout
    assert "hunter2" not in result.output


def test_token_context_is_held_to_the_endpoints_limits(app: Flask, fake: FakeLiveKit) -> None:
    deep = "[" * 40 + "]" * 40
    result = run(app, "token", "--identity", "ada", "--context", f'{{"a": {deep}}}')

    assert result.exit_code == 2
    assert "--context" in result.output and "context.a" in result.output
    assert fake.room.rooms == {}
