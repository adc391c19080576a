"""The options of a new invite: the body of ``POST .../invites`` and the host's arguments.

One model checks both, so the route and ``LiveKitOnboarding.create_invite`` answer the same
422s, and the OpenAPI document's ``InviteRequest`` schema is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema

from .config import INVITE_MAX_TTL
from .errors import ValidationFailed
from .livekit_limits import check_name
from .roles import INVITE_ROLES, InviteRole
from .validation import checked, problem, validated

#: Most people one invite may admit.
MAX_USES = 100
#: Longest label of an invite, in characters.
MAX_LABEL_LENGTH = 100
#: The validation context key of the longest lifetime the deployment allows, in seconds.
MAX_TTL = "invite_max_ttl"


def whole_number(value: Any) -> int | None:
    """``value`` as an int if JSON Schema calls it an integer (``20`` or ``20.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _role(value: Any, key: str) -> InviteRole:
    if value not in INVITE_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(INVITE_ROLES)}.", field="role")
    return value  # type: ignore[no-any-return]


def _ttl(value: Any, info: ValidationInfo) -> int | None:
    # The bound is the deployment's (LIVEKIT_ONBOARDING_INVITE_MAX_TTL), so it comes in the
    # validation context rather than from the model.
    if value is None:
        return None
    limit = (info.context or {}).get(MAX_TTL, INVITE_MAX_TTL)
    seconds = whole_number(value)
    if seconds is None or not 1 <= seconds <= limit:
        raise problem(f"ttl must be a whole number of seconds from 1 to {limit}.", "ttl")
    return seconds


def _max_uses(value: Any, key: str) -> int:
    uses = whole_number(value)
    if uses is None or not 1 <= uses <= MAX_USES:
        raise ValidationFailed(
            f"max_uses must be a whole number from 1 to {MAX_USES}.", field="max_uses"
        )
    return uses


def _label(value: Any, key: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str) and len(value) > MAX_LABEL_LENGTH:
        raise ValidationFailed(
            f"label is longer than {MAX_LABEL_LENGTH} characters.", field="label"
        )
    return check_name(value, "label")


def _guests(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed("guests must be true or false.", field="guests")
    return value


class InviteOptions(BaseModel):
    """A new invite's options, every one optional (a null ttl or label counts as not sent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Annotated[
        InviteRole,
        checked(_role, none=False),
        WithJsonSchema({"enum": list(INVITE_ROLES)}),
    ] = "participant"
    ttl: Annotated[
        int | None,
        BeforeValidator(_ttl),
        WithJsonSchema(
            {
                "type": "integer",
                "minimum": 1,
                "maximum": INVITE_MAX_TTL,
                "description": (
                    "Lifetime in seconds: default LIVEKIT_ONBOARDING_INVITE_TTL, at most "
                    "LIVEKIT_ONBOARDING_INVITE_MAX_TTL "
                    f"({INVITE_MAX_TTL} unless configured)."
                ),
            }
        ),
    ] = None
    max_uses: Annotated[
        int,
        checked(_max_uses, none=False),
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_USES}),
    ] = 1
    label: Annotated[
        str,
        checked(_label, none=False),
        WithJsonSchema(
            {
                "type": "string",
                "maxLength": MAX_LABEL_LENGTH,
                "pattern": "^((?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]*)?$",
                "description": (
                    f"At most {MAX_LABEL_LENGTH} characters, no control characters; "
                    "a guest invitee's display name."
                ),
            }
        ),
    ] = ""
    guests: Annotated[
        bool,
        checked(_guests, none=False),
        WithJsonSchema(
            {
                "type": "boolean",
                "description": "Let somebody who is not signed in join as a guest.",
            }
        ),
    ] = False


def parse_invite_options(options: Mapping[str, Any], max_ttl: int) -> InviteOptions:
    """``options`` checked, ``ttl`` at most ``max_ttl`` seconds; 422 names the bad option."""
    return validated(InviteOptions, options, context={MAX_TTL: max_ttl})
