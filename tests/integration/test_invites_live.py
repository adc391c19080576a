"""Invites and roles against a real livekit-server, joined by real `livekit` SDK clients."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from livekit import rtc

from flask_livekit_onboarding import LiveKitOnboarding, signals
from flask_livekit_onboarding.invite_store import RedisInviteStore
from flask_livekit_onboarding.testing import check_invite_store

from .invite_support import (
    EVENT_WAIT,
    claims,
    connect,
    create,
    error_code,
    header_login_extension,
    invite,
    redeem,
    roles_seen,
    start,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def onboarding() -> LiveKitOnboarding:
    return header_login_extension()


def test_an_invitee_joins_the_owners_session_and_everyone_sees_who_is_who(app: Flask) -> None:
    session = start(app, "ada")
    room_name = session["room_name"]
    created = create(app, room_name, label="for Grace")

    assert set(created) >= {"id", "code", "expires_at", "uses", "max_uses", "role", "link"}
    assert (created["role"], created["uses"], created["max_uses"]) == ("participant", 0, 1)
    assert created["expires_at"] - time.time() == pytest.approx(3600, abs=30)
    assert created["link"] is None

    joined = redeem(app, room_name, created["code"], "grace")
    assert joined.status_code == 201, joined.get_json()
    body = joined.get_json()
    assert (body["room_name"], body["participant_name"]) == (room_name, "Grace Hopper")
    granted = claims(app, body["participant_token"])
    assert granted.identity == "grace"
    assert granted.video is not None and granted.video.can_publish
    assert not granted.video.can_update_own_metadata

    async def scenario() -> None:
        ada, grace = await connect(session), await connect(body)
        try:
            expected = {"ada": "owner", "grace": "participant"}
            await wait_until(lambda: roles_seen(ada) == expected, "ada seeing both roles")
            await wait_until(lambda: roles_seen(grace) == expected, "grace seeing both roles")
            assert grace.local_participant.attributes["onboarding.invited_by"] == "Ada Lovelace"
            # The invite lives apart from the room's metadata, which everyone here can read.
            assert created["code"].split(".")[1] not in grace.metadata
            assert created["id"] not in grace.metadata
        finally:
            await grace.disconnect()
            await ada.disconnect()

    asyncio.run(scenario())
    listed = app.test_client().get(f"/livekit/rooms/{room_name}/invites", headers={"X-User": "ada"})
    assert listed.get_json() == {"invites": []}  # its one use is taken


def test_a_viewer_watches_and_chats_but_publishes_no_media(app: Flask) -> None:
    session = start(app, "ada")
    code = create(app, session["room_name"], role="viewer")["code"]
    body = redeem(app, session["room_name"], code, "grace").get_json()
    granted = claims(app, body["participant_token"])
    assert granted.video is not None
    assert (granted.video.can_publish, granted.video.can_subscribe) == (False, True)
    assert granted.video.can_publish_data

    async def scenario() -> None:
        ada, grace = await connect(session), await connect(body)
        chat: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        @ada.on("data_received")
        def on_data(packet: rtc.DataPacket) -> None:
            if not chat.done():
                chat.set_result(packet.data)

        try:
            await wait_until(lambda: "grace" in ada.remote_participants, "grace joining")
            assert ada.remote_participants["grace"].attributes["onboarding.role"] == "viewer"
            await grace.local_participant.publish_data(b"hello from the viewer", topic="chat")
            assert await asyncio.wait_for(chat, EVENT_WAIT) == b"hello from the viewer"

            source = rtc.AudioSource(48000, 1)
            track = rtc.LocalAudioTrack.create_audio_track("mic", source)
            with pytest.raises(Exception):  # noqa: B017 - the SDK's error type varies by version
                await asyncio.wait_for(grace.local_participant.publish_track(track), EVENT_WAIT)
            await asyncio.sleep(1)
            assert not ada.remote_participants["grace"].track_publications
        finally:
            await grace.disconnect()
            await ada.disconnect()

    asyncio.run(scenario())


def test_guests_join_only_where_the_invite_allows_them(app: Flask) -> None:
    room_name = start(app, "ada")["room_name"]
    members_only = create(app, room_name)["code"]
    refused = redeem(app, room_name, members_only, None)
    assert error_code(refused) == (401, "unauthorized")
    assert "not open to guests" in refused.get_json()["error"]["message"]

    open_code = create(app, room_name, guests=True, label="Grace")["code"]
    browser = app.test_client()
    first = redeem(app, room_name, open_code, None, client=browser)
    assert first.status_code == 201, first.get_json()
    guest = claims(app, first.get_json()["participant_token"])
    assert guest.identity.startswith("guest-") and guest.name == "Grace"
    assert guest.attributes is not None and guest.attributes["onboarding.role"] == "participant"

    # The same browser comes back (a reload): no second use is taken.
    again = redeem(app, room_name, open_code, None, client=browser)
    assert again.status_code == 201
    assert claims(app, again.get_json()["participant_token"]).identity == guest.identity
    other_browser = redeem(app, room_name, open_code, None)
    assert error_code(other_browser) == (410, "invite_used_up")
    # The members-only invite was not used up by the refused guest.
    assert redeem(app, room_name, members_only, "grace").status_code == 201


def test_owner_and_staff_list_invites_without_codes_and_revoke_them_at_once(app: Flask) -> None:
    session = start(app, "ada")
    room_name = session["room_name"]
    path = f"/livekit/rooms/{room_name}/invites"
    for_grace = create(app, room_name, label="Grace", max_uses=2)
    by_staff = create(app, room_name, "sam", role="viewer")
    assert by_staff["created_by"] == "sam"

    for user in ("ada", "sam"):
        listed = app.test_client().get(path, headers={"X-User": user})
        assert listed.status_code == 200
        assert [i["id"] for i in listed.get_json()["invites"]] == [for_grace["id"], by_staff["id"]]
        text = listed.get_data(as_text=True)
        assert for_grace["code"].split(".")[1] not in text and '"code"' not in text
    assert error_code(app.test_client().get(path, headers={"X-User": "eve"})) == (
        403,
        "forbidden",
    )

    body = redeem(app, room_name, for_grace["code"], "grace").get_json()

    async def scenario() -> None:
        ada, grace = await connect(session), await connect(body)
        gone: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        grace.on("disconnected", lambda reason: gone.done() or gone.set_result(reason))
        try:
            await wait_until(lambda: "grace" in ada.remote_participants, "grace joining")
            revoked = await asyncio.to_thread(
                app.test_client().delete, f"{path}/{for_grace['id']}", headers={"X-User": "ada"}
            )
            assert revoked.status_code == 204
            await asyncio.wait_for(gone, EVENT_WAIT)
            await wait_until(lambda: "grace" not in ada.remote_participants, "grace leaving")
        finally:
            await grace.disconnect()
            await ada.disconnect()

    asyncio.run(scenario())
    assert error_code(redeem(app, room_name, for_grace["code"], "eve")) == (410, "invite_revoked")
    assert error_code(redeem(app, room_name, for_grace["code"], "grace")) == (
        410,
        "invite_revoked",
    )
    listed = app.test_client().get(path, headers={"X-User": "ada"}).get_json()["invites"]
    assert [i["id"] for i in listed] == [by_staff["id"]]
    missing = app.test_client().delete(f"{path}/no-such-invite", headers={"X-User": "ada"})
    assert error_code(missing) == (404, "invite_not_found")


def test_refused_codes_name_the_reason_and_take_no_use(app: Flask, make_app: Any) -> None:
    room_name = start(app, "ada")["room_name"]
    other_room = start(app, "sam")["room_name"]
    code = create(app, room_name)["code"]
    issued: list[dict[str, Any]] = []

    with signals.token_issued.connected_to(lambda sender, **kw: issued.append(kw), app):
        refusals = {
            "malformed": redeem(app, room_name, "not-a-code"),
            "empty": redeem(app, room_name, ""),
            "unknown": redeem(app, room_name, f"{secrets.token_urlsafe(9)}.{'A' * 43}"),
            "tampered": redeem(app, room_name, code[:-4] + "AAAA"),
            "wrong room": redeem(app, other_room, code),
            "no room": redeem(app, None, code),
            "agents": redeem(app, room_name, code, room_config={"agents": [{"agent_name": "x"}]}),
        }
    assert {what: error_code(r) for what, r in refusals.items()} == {
        "malformed": (404, "invite_malformed"),
        "empty": (404, "invite_malformed"),
        "unknown": (404, "invite_not_found"),
        "tampered": (404, "invite_not_found"),
        "wrong room": (403, "invite_wrong_room"),
        "no room": (422, "validation_failed"),
        "agents": (422, "validation_failed"),
    }
    assert issued == []
    for response in refusals.values():
        assert code not in response.get_data(as_text=True)

    # A code of another deployment (its own signing key) means nothing here.
    foreign_app = make_app(LIVEKIT_ONBOARDING_SIGNING_KEY="f" * 40)
    foreign_room = start(foreign_app, "ada")["room_name"]
    foreign = create(foreign_app, foreign_room)["code"]
    assert error_code(redeem(app, foreign_room, foreign)) == (404, "invite_not_found")

    # None of that used the invite up.
    assert redeem(app, room_name, code, "grace").status_code == 201
    assert error_code(redeem(app, room_name, code, "eve")) == (410, "invite_used_up")


def test_an_expired_invite_is_refused(app: Flask) -> None:
    room_name = start(app, "ada")["room_name"]
    code = create(app, room_name, ttl=1)["code"]
    time.sleep(2.1)
    assert error_code(redeem(app, room_name, code)) == (410, "invite_expired")


def test_an_invite_dies_with_its_session(app: Flask) -> None:
    room_name = start(app, "ada")["room_name"]
    code = create(app, room_name, max_uses=5)["code"]
    assert redeem(app, room_name, code, "grace").status_code == 201
    ended = app.test_client().delete(f"/livekit/rooms/{room_name}", headers={"X-User": "ada"})
    assert ended.status_code == 204
    assert error_code(redeem(app, room_name, code, "eve")) == (410, "invite_session_ended")
    assert error_code(redeem(app, room_name, code, "grace")) == (410, "invite_session_ended")


def test_an_invite_is_refused_in_a_newer_session_of_the_same_room_name(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="resume")
    user = f"resumer-{secrets.token_hex(4)}"
    first = start(app, user)
    code = create(app, first["room_name"], user)["code"]
    app.test_client().delete(f"/livekit/rooms/{first['room_name']}", headers={"X-User": user})
    second = start(app, user)
    assert second["room_name"] == first["room_name"]  # the resume policy reuses the name

    assert error_code(redeem(app, first["room_name"], code)) == (410, "invite_session_ended")
    listed = app.test_client().get(
        f"/livekit/rooms/{first['room_name']}/invites", headers={"X-User": user}
    )
    assert listed.get_json() == {"invites": []}
    app.test_client().delete(f"/livekit/rooms/{first['room_name']}", headers={"X-User": user})


def test_only_owner_and_staff_may_invite_and_bad_options_are_named(make_app: Any) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_MAX_INVITES=2,
        LIVEKIT_ONBOARDING_INVITE_TTL=300,
        LIVEKIT_ONBOARDING_INVITE_MAX_TTL=600,
    )
    room_name = start(app, "ada")["room_name"]
    path = f"/livekit/rooms/{room_name}/invites"

    refused = {
        "stranger": invite(app, room_name, "eve"),
        "signed out": invite(app, room_name, None),
        "no such room": invite(app, "onboarding-nope", "ada"),
        "bad role": invite(app, room_name, role="owner"),
        "too long": invite(app, room_name, ttl=601),
        "no uses": invite(app, room_name, max_uses=0),
        "unknown field": invite(app, room_name, code="mine"),
    }
    assert {what: error_code(r) for what, r in refused.items()} == {
        "stranger": (403, "forbidden"),
        "signed out": (401, "unauthorized"),
        "no such room": (404, "room_not_found"),
        "bad role": (422, "validation_failed"),
        "too long": (422, "validation_failed"),
        "no uses": (422, "validation_failed"),
        "unknown field": (422, "validation_failed"),
    }
    assert refused["bad role"].get_json()["error"]["field"] == "role"
    assert app.test_client().get(path, headers={"X-User": "ada"}).get_json() == {"invites": []}

    first = create(app, room_name)
    create(app, room_name, "sam")
    assert error_code(invite(app, room_name)) == (422, "too_many_invites")
    app.test_client().delete(f"{path}/{first['id']}", headers={"X-User": "ada"})
    assert invite(app, room_name).status_code == 201


def test_staff_join_as_staff_and_clients_cannot_choose_a_role(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY=True)
    session = start(app, "ada")
    room_name = session["room_name"]
    staff = app.test_client().post(
        "/livekit/token", json={"room_name": room_name}, headers={"X-User": "sam"}
    )
    assert staff.status_code == 201
    staff_claims = claims(app, staff.get_json()["participant_token"])
    assert staff_claims.attributes == {"onboarding.role": "staff"}

    forged = {"onboarding.role": "owner"}
    own = app.test_client().post(
        "/livekit/token", json={"participant_attributes": forged}, headers={"X-User": "eve"}
    )
    code = create(app, room_name, role="viewer")["code"]
    by_invite = redeem(app, room_name, code, "grace", participant_attributes=forged)
    for response in (own, by_invite):
        assert error_code(response) == (403, "forbidden")
        assert response.get_json()["error"]["field"] == "participant_attributes.onboarding.role"

    viewer = redeem(app, room_name, code, "grace", participant_attributes={"team": "qa"})
    assert viewer.status_code == 201

    async def scenario() -> None:
        ada, grace = await connect(session), await connect(viewer.get_json())
        try:
            await wait_until(lambda: "grace" in ada.remote_participants, "grace joining")
            with contextlib.suppress(Exception):  # refused outright is fine too
                await asyncio.wait_for(
                    grace.local_participant.set_attributes({"onboarding.role": "owner"}), 5
                )
            await asyncio.sleep(1.5)
            seen = ada.remote_participants["grace"].attributes
            assert seen == {"team": "qa", "onboarding.role": "viewer", **_invited_by()}
        finally:
            await grace.disconnect()
            await ada.disconnect()

    asyncio.run(scenario())


def _invited_by() -> dict[str, str]:
    return {"onboarding.invited_by": "Ada Lovelace"}


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_twenty_simultaneous_redemptions_of_a_one_use_invite_yield_one_token(
    make_app: Any, request: pytest.FixtureRequest, store: str
) -> None:
    config = {}
    if store == "redis":
        config["LIVEKIT_ONBOARDING_REDIS_URL"] = request.getfixturevalue("redis_server")
    app = make_app(**config)
    room_name = start(app, "ada")["room_name"]
    code = create(app, room_name)["code"]
    gate = threading.Barrier(20)

    def attempt(index: int) -> int:
        client = app.test_client()
        gate.wait()
        return redeem(app, room_name, code, f"racer-{index}", client=client).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(attempt, range(20)))

    assert sorted(statuses) == [201] + [410] * 19
    path = f"/livekit/rooms/{room_name}/invites"
    assert app.test_client().get(path, headers={"X-User": "ada"}).get_json() == {"invites": []}


def test_the_redis_store_keeps_the_contract(redis_server: str) -> None:
    store = RedisInviteStore(redis_server)
    try:
        check_invite_store(store)
    finally:
        store.close()


def test_a_shared_store_keeps_deployments_apart(make_app: Any, redis_server: str) -> None:
    ours = make_app(LIVEKIT_ONBOARDING_REDIS_URL=redis_server)
    theirs = make_app(
        LIVEKIT_ONBOARDING_REDIS_URL=redis_server, LIVEKIT_ONBOARDING_SIGNING_KEY="t" * 40
    )
    their_room = start(theirs, "ada")["room_name"]
    their_code = create(theirs, their_room)["code"]

    assert error_code(redeem(ours, their_room, their_code)) == (404, "invite_not_found")
    assert redeem(theirs, their_room, their_code).status_code == 201

    # Two workers of one deployment share the invite and its uses.
    worker_a = make_app(LIVEKIT_ONBOARDING_REDIS_URL=redis_server)
    worker_b = make_app(LIVEKIT_ONBOARDING_REDIS_URL=redis_server)
    room_name = start(worker_a, "ada")["room_name"]
    code = create(worker_a, room_name)["code"]
    assert redeem(worker_b, room_name, code, "grace").status_code == 201
    assert error_code(redeem(worker_a, room_name, code, "eve")) == (410, "invite_used_up")


def test_the_host_and_the_cli_invite_with_a_ready_link(
    make_app: Any, onboarding: LiveKitOnboarding
) -> None:
    app = make_app(LIVEKIT_ONBOARDING_INVITE_URL="https://app.example.com/join")
    room_name = start(app, "ada")["room_name"]
    hosted = onboarding.create_invite(room_name, role="viewer", label="Board", app=app)
    assert hosted.invite.role == "viewer"
    assert hosted.link is not None and hosted.link.startswith("https://app.example.com/join#")
    assert f"room={room_name}" in hosted.link and hosted.code in hosted.link.replace("%2E", ".")
    viewer = redeem(app, room_name, hosted.code, "grace")
    assert claims(app, viewer.get_json()["participant_token"]).attributes == {
        "onboarding.role": "viewer",
        "onboarding.invited_by": "ada",
    }

    result = app.test_cli_runner().invoke(
        args=["livekit", "invite", room_name, "--uses", "2", "--ttl", "600"]
    )
    assert result.exit_code == 0, result.output
    code = result.stdout.strip()
    assert "link: https://app.example.com/join#" in result.stderr
    assert redeem(app, room_name, code, "grace").status_code == 201
    assert redeem(app, room_name, code, "eve").status_code == 201
    assert error_code(redeem(app, room_name, code, "sam")) == (410, "invite_used_up")

    missing = app.test_cli_runner().invoke(args=["livekit", "invite", "onboarding-nope"])
    assert missing.exit_code == 1
    assert "No onboarding room named 'onboarding-nope'" in missing.stderr
    too_long = app.test_cli_runner().invoke(
        args=["livekit", "invite", room_name, "--ttl", "999999"]
    )
    assert too_long.exit_code == 1
    assert "ttl must be a whole number of seconds" in too_long.stderr

    hosted_ids = [i.id for i in onboarding.list_invites(room_name, app=app)]
    assert hosted.invite.id not in hosted_ids  # its one use is taken
    onboarding.revoke_invite(room_name, hosted.invite.id, app=app)
    assert error_code(redeem(app, room_name, hosted.code, "grace")) == (410, "invite_revoked")
