"""The token flow's shape: rules chosen once, one token per request, explicit callers, signals
sent with the app whatever context the host's code runs in."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask, current_app

from flask_livekit_onboarding import LiveKitOnboarding, signals, token_flow
from flask_livekit_onboarding.caller import Caller
from flask_livekit_onboarding.errors import Forbidden
from flask_livekit_onboarding.hooks import Identity
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.token_flow import (
    EagerCreation,
    NewSessions,
    OnJoinCreation,
    ResumeSessions,
)

from ..conftest import HostUsers, MakeApp


@pytest.mark.parametrize(
    ("creation", "policy", "kinds"),
    [
        ("eager", "resume", (EagerCreation, ResumeSessions)),
        ("eager", "new", (EagerCreation, NewSessions)),
        ("on_join", "resume", (OnJoinCreation, ResumeSessions)),
        ("on_join", "new", (OnJoinCreation, NewSessions)),
    ],
)
def test_init_app_chooses_the_room_creation_and_session_policy_once(
    make_app: MakeApp, creation: str, policy: str, kinds: tuple[type, type]
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION=creation, LIVEKIT_ONBOARDING_SESSION_POLICY=policy
    )
    flow = get_state(app).token_flow
    assert (type(flow.creation), type(flow.policy)) == kinds


@pytest.mark.parametrize("creation", ["eager", "on_join"])
def test_every_token_request_mints_exactly_one_token(
    make_app: MakeApp, users: HostUsers, monkeypatch: pytest.MonkeyPatch, creation: str
) -> None:
    minted: list[str] = []
    mint = token_flow.mint_participant_token

    def counting(*args: Any, **kwargs: Any) -> str:
        minted.append(kwargs["room_name"])
        return mint(*args, **kwargs)

    monkeypatch.setattr(token_flow, "mint_participant_token", counting)
    client = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION=creation).test_client()

    def tokens_minted_by(body: dict[str, Any]) -> tuple[int, Any]:
        before = len(minted)
        response = client.post("/livekit/token", json=body)
        assert response.status_code == 201, response.get_json()
        return len(minted) - before, response.get_json()["resumed"]

    started = tokens_minted_by({})
    resumed = tokens_minted_by({})
    assert started == (1, False if creation == "eager" else None)
    assert resumed == (1, True if creation == "eager" else None)
    if creation == "eager":
        users.staff.add("staff-1")
        users.current = Identity("staff-1", name="Grace")
        assert tokens_minted_by({"room_name": minted[0]}) == (1, True)


def test_the_host_and_operators_act_on_any_room_users_only_where_allowed(
    app: Flask, users: HostUsers
) -> None:
    from flask_livekit_onboarding import access

    room_name = app.test_client().post("/livekit/token", json={}).get_json()["room_name"]
    state = get_state(app)
    assert access.require_room(state, room_name, Caller.host(), "end").name == room_name
    assert access.require_room(state, room_name, Caller.operator(), "end").name == room_name
    owner = Caller.user(Identity("user-1"))
    assert access.require_room(state, room_name, owner, "end").name == room_name
    with pytest.raises(Forbidden):
        access.require_room(state, room_name, Caller.user(Identity("someone-else")), "end")


def test_a_caller_says_who_it_is_and_refuses_what_it_cannot_be() -> None:
    ada = Identity("ada")
    assert str(Caller.host()) == "the host" and Caller.host().trusted
    assert str(Caller.operator()) == "the operator" and Caller.operator().trusted
    assert Caller.operator(acting_for=ada).person == ada
    assert not Caller.user(ada).trusted and not Caller.guest(ada).trusted
    with pytest.raises(ValueError):
        Caller("user")
    with pytest.raises(ValueError):
        _ = Caller.host().person


def test_host_code_outside_any_app_context_sends_signals_that_run_in_the_apps_context(
    app: Flask, make_app: MakeApp, onboarding: LiveKitOnboarding
) -> None:
    other = make_app()  # a second app on the same extension, whose context must not be used
    room_name = app.test_client().post("/livekit/token", json={}).get_json()["room_name"]
    seen: list[tuple[str, Flask, Flask]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        seen.append((kwargs["room_name"], sender, current_app._get_current_object()))

    def host_job() -> None:  # a background job of the host: no app or request context
        onboarding.update_context(room_name, {"step": "done"}, app=app)

    signals.context_updated.connect(receiver)
    signals.session_ended.connect(receiver)
    try:
        thread = threading.Thread(target=host_job)
        thread.start()
        thread.join(10)
        with other.app_context():  # the host's code runs in another app's context
            onboarding.end_session(room_name, app=app)
    finally:
        signals.context_updated.disconnect(receiver)
        signals.session_ended.disconnect(receiver)
    assert seen == [(room_name, app, app), (room_name, app, app)]
