"""Minting least-privilege participant tokens from livekit-api's claim types.

``AccessToken.to_jwt`` turns its ``Claims`` into a dict with ``dataclasses.asdict``, which
deep-copies every value (the room configuration's protobuf message included) and camel-cases
every field name again on every call: most of its cost, and none of it depends on the request.
Here the same ``Claims`` are serialised with each type's field table computed once, by
livekit-api's own camel-casing, into the same dict in the same order, and signed by the same
PyJWT call; ``tests/unit/test_tokens.py`` checks the result equals ``to_jwt``'s byte for byte.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from livekit import api
from livekit.api import access_token
from livekit.api.access_token import Claims, snake_to_lower_camel

from .config import OnboardingConfig
from .roles import GRANTS, INVITED_BY_ATTRIBUTE, ROLE_ATTRIBUTE, SERVER_ATTRIBUTES, Role

#: Seconds past a token's expiry during which LiveKit still accepts it (its JWT leeway is one
#: minute), plus a little for clocks: the join deadline of an ``on_join`` envelope.
JOIN_GRACE = 65


def mint_participant_token(
    config: OnboardingConfig,
    *,
    room_name: str,
    identity: str,
    name: str,
    metadata: str | None = None,
    attributes: Mapping[str, str] | None = None,
    room_config: api.RoomConfiguration | None = None,
    ttl: int | None = None,
    role: Role = "owner",
    invited_by: str | None = None,
) -> str:
    """Return a JWT that lets ``identity`` join ``room_name`` as ``role`` and nothing more.

    The grants follow the role (a viewer publishes no media); room admin, list, create and
    record are never granted, nor changing one's own attributes. The role travels as the
    attribute :data:`~flask_livekit_onboarding.roles.ROLE_ATTRIBUTE` (with ``invited_by``, the
    inviter's name); attributes of those names given in ``attributes`` are dropped.
    """
    allowed = GRANTS[role]
    grants = api.VideoGrants(
        room_join=True,
        room=room_name,
        can_publish=allowed.can_publish,
        can_subscribe=allowed.can_subscribe,
        can_publish_data=allowed.can_publish_data,
    )
    carried = {k: v for k, v in (attributes or {}).items() if k not in SERVER_ATTRIBUTES}
    carried[ROLE_ATTRIBUTE] = role
    if invited_by:
        carried[INVITED_BY_ATTRIBUTE] = invited_by
    claims = Claims(
        name=name,
        metadata=metadata or "",
        video=grants,
        attributes=carried,
        room_config=room_config,
    )
    return encode_claims(
        claims, identity, config.api_key, config.api_secret, ttl or config.token_ttl
    )


def encode_claims(claims: Claims, identity: str, api_key: str, api_secret: str, ttl: int) -> str:
    """Sign ``claims`` for ``identity`` as ``AccessToken.to_jwt`` does, valid ``ttl`` seconds."""
    video = claims.video
    if video and video.room_join and (not identity or not video.room):
        raise ValueError("identity and room must be set when joining a room")
    payload = _as_claims(claims)
    now = int(time.time())
    payload.update(sub=identity, iss=api_key, nbf=now, exp=now + ttl)
    return jwt.encode(payload, api_secret, algorithm="HS256")


#: Each field of each of livekit-api's claim dataclasses, with its JWT claim name.
_FIELD_KEYS: Mapping[type, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        cls: tuple((f.name, snake_to_lower_camel(f.name)) for f in dataclasses.fields(cls))
        for cls in vars(access_token).values()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls)
    }
)


_SCALARS = (str, bool, int, float)


def _as_claims(grants: Any) -> dict[str, Any]:
    """``Claims.asdict``'s output: None and empty strings left out, keys camel-cased."""
    return {
        key: _claim_value(value)
        for name, key in _FIELD_KEYS[type(grants)]
        if (value := getattr(grants, name)) is not None and value != ""
    }


def _claim_value(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Message):
        return MessageToDict(value)
    if type(value) in _FIELD_KEYS:
        return _as_claims(value)
    if isinstance(value, dict):
        return {key: _claim_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_claim_value(item) for item in value]
    return value
