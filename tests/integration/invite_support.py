"""Shared pieces of the invite tests: a host whose login reads a header, and request helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from flask.testing import FlaskClient
from livekit import api, rtc
from werkzeug.test import TestResponse

from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.invites import INVITE_HEADER

#: The host's users: login identity -> display name. ``sam`` is staff.
NAMES = {"ada": "Ada Lovelace", "grace": "Grace Hopper", "sam": "Sam Staff", "eve": "Eve"}
STAFF = {"sam"}
#: Upper bound on waiting for something LiveKit pushes to a connected client.
EVENT_WAIT = 15.0


def header_login_extension() -> LiveKitOnboarding:
    """A host app whose login is the ``X-User`` header (none: signed out); ``sam`` is staff."""
    extension = LiveKitOnboarding()

    @extension.identity_loader
    def load_identity() -> Identity | None:
        user = request.headers.get("X-User")
        return Identity(user, NAMES.get(user, user)) if user else None

    @extension.context_provider
    def onboarding_context(identity: Identity) -> dict[str, Any]:
        return {"user": identity.identity, "step": "welcome"}

    @extension.room_authorizer
    def staff_may(identity: Identity, room: Any, action: str) -> bool:
        return identity.identity in STAFF

    return extension


def signed_in(user: str | None) -> dict[str, str]:
    return {"X-User": user} if user else {}


def start(app: Flask, user: str = "ada") -> dict[str, Any]:
    """Start ``user``'s onboarding session; the token endpoint's body."""
    response = app.test_client().post("/livekit/token", json={}, headers=signed_in(user))
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def invite(app: Flask, room_name: str, user: str | None = "ada", **body: Any) -> TestResponse:
    return app.test_client().post(
        f"/livekit/rooms/{room_name}/invites", json=body, headers=signed_in(user)
    )


def create(app: Flask, room_name: str, user: str | None = "ada", **body: Any) -> dict[str, Any]:
    response = invite(app, room_name, user, **body)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def redeem(
    app: Flask,
    room_name: str | None,
    code: str,
    user: str | None = "grace",
    *,
    client: FlaskClient | None = None,
    **extra: Any,
) -> TestResponse:
    body = {"room_name": room_name, **extra} if room_name is not None else dict(extra)
    return (client or app.test_client()).post(
        "/livekit/token", json=body, headers={INVITE_HEADER: code, **signed_in(user)}
    )


def error_code(response: TestResponse) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def claims(app: Flask, token: str) -> api.Claims:
    config = app.extensions["livekit_onboarding"].config
    return api.TokenVerifier(config.api_key, config.api_secret).verify(token)


async def wait_until(check: Callable[[], Any], what: str, timeout: float = EVENT_WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)
    return found


async def connect(body: dict[str, Any]) -> rtc.Room:
    room = rtc.Room()
    await room.connect(body["server_url"], body["participant_token"])
    return room


def roles_seen(room: rtc.Room) -> dict[str, str | None]:
    """Who ``room``'s client sees (itself included), by identity, with their role attribute."""
    seen = {
        p.identity: p.attributes.get("onboarding.role") for p in room.remote_participants.values()
    }
    local = room.local_participant
    seen[local.identity] = local.attributes.get("onboarding.role")
    return seen
