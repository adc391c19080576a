"""The request models: the 422 each body gets names the field, as the error bodies always did."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding.errors import ValidationFailed
from flask_livekit_onboarding.token_request import parse_token_request


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"b": 1, "a": 2, "room_name": 5}, "a", "Unknown field 'a'."),
        ({"room_name": 5}, "room_name", "room_name must be a non-empty string."),
        ({"participant_attributes": {"k": "\ud800"}}, "participant_attributes.k", "Unicode"),
        ({"room_config": []}, "room_config", "room_config must be an object."),
        (
            {"room_config": {"agents": [{"agent_name": ""}]}},
            "room_config.agents[0].agent_name",
            "is required",
        ),
    ],
)
def test_a_bad_token_request_names_the_field(
    body: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_token_request(body)

    assert refused.value.field == field
    assert message in refused.value.description


def test_an_invite_lifetime_sent_as_a_whole_float_is_accepted(app: Flask) -> None:
    client = app.test_client()
    room_name = client.post("/livekit/token", json={}).get_json()["room_name"]

    created = client.post(
        f"/livekit/rooms/{room_name}/invites", json={"ttl": 20.0, "max_uses": 2.0}
    )

    assert created.status_code == 201, created.get_json()
    assert created.get_json()["max_uses"] == 2
    assert isinstance(created.get_json()["max_uses"], int)
