"""The ``room_authorizer`` guide: its examples run as pasted and its action table is whole."""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.hooks import RoomAction

from ..conftest import HostUsers, MakeApp
from ..docs_code import code_blocks, section

CUSTOMER = Identity("user-1", "Ada Lovelace", attributes={"role": "customer"})
MANAGER = Identity("staff-1", "Grace Hopper", attributes={"role": "staff"})
OTHER_STAFF = Identity("staff-2", "Joan Clarke", attributes={"role": "staff"})


def test_the_action_table_lists_every_action() -> None:
    table = section("authorization", "`action`")
    documented = set(re.findall(r'^\| `"(\w+)"` \|', table, re.M))
    assert documented == set(typing.get_args(RoomAction))


@pytest.fixture
def account_team(users: HostUsers, make_app: MakeApp) -> tuple[Flask, HostUsers]:
    """An app whose authorizer is the guide's account-team example."""
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: users.current)
    extension.context_provider(lambda identity: {"account_manager": "staff-1"})
    (_, example, _) = code_blocks("authorization", None, "python")
    namespace: dict[str, Any] = {"onboarding": extension}
    exec(compile(example, "docs/authorization.md", "exec"), namespace)
    return make_app(extension), users


def test_the_account_manager_helps_and_other_staff_only_watch(
    account_team: tuple[Flask, HostUsers],
) -> None:
    app, users = account_team
    client = app.test_client()
    users.current = CUSTOMER
    room = client.post("/livekit/token", json={}).get_json()["room_name"]
    path = f"/livekit/rooms/{room}"

    users.current = OTHER_STAFF
    assert client.get(path).status_code == 200
    assert client.post("/livekit/token", json={"room_name": room}).status_code == 403
    assert client.delete(path).status_code == 403

    users.current = MANAGER
    assert client.post("/livekit/token", json={"room_name": room}).status_code == 201
    assert client.patch(f"{path}/context", json={"context": {"step": "tour"}}).status_code == 200
    assert client.delete(path).status_code == 204


def test_the_owner_needs_the_authorizer_only_to_change_the_context(
    account_team: tuple[Flask, HostUsers],
) -> None:
    app, users = account_team
    client = app.test_client()
    users.current = CUSTOMER
    room = client.post("/livekit/token", json={}).get_json()["room_name"]
    path = f"/livekit/rooms/{room}"

    assert client.get(path).status_code == 200
    assert client.patch(f"{path}/context", json={"client": {"seen": 1}}).status_code == 200
    assert client.patch(f"{path}/context", json={"context": {"step": "x"}}).status_code == 403
    assert client.delete(path).status_code == 204
