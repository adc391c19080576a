"""LiveKit's limits on what a token or a room may carry, checked before anything is signed."""

from __future__ import annotations

import json
from typing import Any

from .config import MAX_METADATA_BYTES, MAX_NAME_LENGTH
from .errors import ValidationFailed


def check_name(value: Any, key: str) -> str:
    """A non-empty string of at most 256 characters (identity, name, room name)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{key} must be a non-empty string.", field=key)
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"{key} is longer than {MAX_NAME_LENGTH} characters.", field=key)
    return value


def check_size(value: str, key: str) -> None:
    """Refuse a value over LiveKit's 64 KiB limit for metadata and attributes."""
    if len(value.encode()) > MAX_METADATA_BYTES:
        raise ValidationFailed(f"{key} is larger than 64 KiB.", field=key)


def check_metadata(value: Any, key: str) -> str:
    """A string within LiveKit's 64 KiB metadata limit."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{key} must be a string.", field=key)
    check_size(value, key)
    return value


def check_attributes(value: Any, key: str) -> dict[str, str]:
    """A flat string-to-string object within 64 KiB in total."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationFailed(f"{key} must be an object of string values.", field=key)
    check_size(json.dumps(value), key)
    return dict(value)
