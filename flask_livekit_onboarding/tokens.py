"""Minting least-privilege participant tokens with livekit-api."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from livekit import api

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
    token = (
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=ttl or config.token_ttl))
    )
    if metadata:
        token.with_metadata(metadata)
    claims = {k: v for k, v in (attributes or {}).items() if k not in SERVER_ATTRIBUTES}
    claims[ROLE_ATTRIBUTE] = role
    if invited_by:
        claims[INVITED_BY_ATTRIBUTE] = invited_by
    token.with_attributes(claims)
    if room_config is not None:
        token.with_room_config(room_config)
    return token.to_jwt()
