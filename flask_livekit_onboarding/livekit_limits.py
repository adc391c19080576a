"""LiveKit's limits on what a token or a room may carry, checked before anything is signed.

The same limits apply to what a client sends and to what the host's hooks return: a value
LiveKit (or a proxy in front of it) cannot carry is refused with a 422 naming the field before
any room is created or any token handed out.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

from livekit import api

from .config import MAX_METADATA_BYTES, MAX_NAME_LENGTH, OnboardingConfig
from .errors import ValidationFailed
from .hooks import Identity

if TYPE_CHECKING:
    from .envelope import Envelope

logger = logging.getLogger(__name__)

#: Deepest nesting accepted anywhere in a request body; the body's own object is level 1.
MAX_BODY_DEPTH = 64


def check_name(value: Any, key: str) -> str:
    """A non-empty string of at most 256 bytes of UTF-8 (identity, name, room name).

    LiveKit counts these limits in bytes, so a 200-character name in a script of two-byte
    letters is refused here, before anything is created, not at the join.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{key} must be a non-empty string.", field=key)
    if any(_is_control(char) for char in value):
        # A newline or an escape sequence in a name would forge log lines and terminal output.
        raise ValidationFailed(f"{key} must not contain control characters.", field=key)
    size = len(_check_unicode(value, key))
    if size > MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"{key} is {size} bytes of UTF-8, longer than LiveKit's {MAX_NAME_LENGTH}.", field=key
        )
    return value


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def check_size(value: str, key: str) -> None:
    """Refuse a value over LiveKit's 64 KiB limit for metadata and attributes."""
    if len(_check_unicode(value, key)) > MAX_METADATA_BYTES:
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
    for name, text in value.items():
        _check_unicode(name, key)
        _check_unicode(text, f"{key}.{_shown(name)}")
    check_size(json.dumps(value), key)
    return dict(value)


def json_problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    """The first reason ``value`` cannot be stored as JSON: ``(path, what is wrong)``, or None.

    Refused: nesting deeper than ``max_depth`` (``value`` itself is level 1), strings or keys
    that are not valid Unicode (lone UTF-16 surrogates, which JSON's ``\\ud800`` escapes can
    spell), NaN and infinities, and anything JSON has no type for. The path reads like
    ``context.steps[2].title`` (for nesting, the outermost field: ``context``).
    """
    stack: list[tuple[Any, Any, int]] = [(value, None, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return _path(path), "is not valid Unicode (it holds a lone UTF-16 surrogate)"
        elif isinstance(item, (dict, list, tuple)):
            if depth > max_depth:
                return _path(_outermost(path)), f"is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return _path(path), "has a key that is not a string"
                    if not _is_unicode(key):
                        return _path((path, key)), "is a key that is not valid Unicode"
                    stack.append((child, (path, key), depth + 1))
            else:
                stack.extend((child, (path, index), depth + 1) for index, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return _path(path), "is not a finite number"
        elif item is not None and not isinstance(item, (bool, int)):
            return _path(path), f"is not JSON (a {type(item).__name__})"
    return None


def check_json(value: Any, key: str, max_depth: int) -> None:
    """Refuse (422 naming the field) a value :func:`json_problem` finds fault with."""
    problem = json_problem(value, max_depth)
    if problem is not None:
        where, what = problem
        field = _join(key, where)
        raise ValidationFailed(f"{field} {what}.", field=field)


def check_stored_json(value: Any, key: str, max_depth: int, *, hook: str | None = None) -> None:
    """Refuse a context (or notes) that every later reader of the room could not read back.

    ``hook`` names the host's hook that returned ``value``; the refusal is then logged as an
    error for the host, and the client still gets the 422.
    """
    try:
        check_json(value, key, max_depth)
    except ValidationFailed as error:
        if hook is not None:
            logger.error("%s returned a value that cannot be stored: %s", hook, error.description)
        raise


def check_client_notes(notes: Any, limit: int) -> None:
    """Refuse (422 naming ``client``) notes larger than ``limit`` bytes of compact JSON."""
    size = len(json.dumps(notes, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise ValidationFailed(
            f"client notes would be {size} bytes, over the limit of {limit} "
            "(LIVEKIT_ONBOARDING_MAX_CLIENT_BYTES).",
            field="client",
        )


def room_metadata(envelope: Envelope, blame: str) -> str:
    """The envelope as room metadata; 422 naming the field ``blame`` where LiveKit could not
    store it (not plain JSON, or over LiveKit's 64 KiB)."""
    try:
        metadata = envelope.to_metadata()
    except (TypeError, ValueError) as error:
        raise MetadataRefused(
            f"{blame} must be plain JSON (no NaN or Infinity).",
            field=blame,
            reason=f"a non-JSON value: {error}",
        ) from None
    if len(metadata.encode()) > MAX_METADATA_BYTES:
        raise MetadataRefused(
            f"{blame} makes the room metadata larger than LiveKit's 64 KiB.",
            field=blame,
            reason="a context larger than 64 KiB",
        )
    return metadata


class MetadataRefused(ValidationFailed):
    """Room metadata LiveKit could not store; ``reason`` says why in a few words."""

    def __init__(self, description: str, *, field: str, reason: str) -> None:
        super().__init__(description, field=field)
        self.reason = reason


def check_identity(identity: Identity, hook: str = "identity_loader") -> Identity:
    """Apply the token request's limits to an :class:`Identity` a host hook returned.

    The values end up in the participant token, so they meet the limits a client's would:
    a value over one is logged as an error naming ``hook`` and refused with a 422 naming the
    token field, before anything is created or signed.
    """
    checks = (
        ("participant_identity", identity.identity, check_name),
        ("participant_name", identity.name, check_name),
        ("participant_metadata", identity.metadata, check_metadata),
        ("participant_attributes", identity.attributes, _hook_attributes),
    )
    try:
        for field, value, check in checks:
            if value is not None:
                check(value, field)
    except ValidationFailed as error:
        logger.error("%s returned an identity LiveKit cannot carry: %s", hook, error.description)
        raise ValidationFailed(
            f"The server's record of this user cannot go into a LiveKit token: {error.description}",
            field=error.field,
        ) from None
    return identity


def check_token_size(token: str, limit: int, *, field: str | None = None) -> str:
    """Refuse a participant token longer than ``limit`` bytes (``MAX_TOKEN_BYTES``).

    Clients send the token in the WebSocket URL, and proxies cap the request line (nginx at
    8 KiB by default): a longer token would be issued and then fail at the join.
    """
    if len(token) > limit:
        logger.error(
            "a participant token of %d bytes was refused, over the %d of "
            "LIVEKIT_ONBOARDING_MAX_TOKEN_BYTES: keep the identity's metadata and attributes "
            "(and, with on_join, the context) smaller",
            len(token),
            limit,
        )
        raise ValidationFailed(
            f"The participant token would be {len(token)} bytes, over the limit of {limit}: "
            "the identity's metadata and attributes or the onboarding context are too large.",
            field=field,
        )
    return token


def check_participant_token(
    token: str,
    config: OnboardingConfig,
    participant: Identity,
    settings: api.RoomConfiguration | None = None,
) -> str:
    """:func:`check_token_size` with the bound of ``config``, blaming the largest part."""
    parts = {
        "participant_metadata": len(participant.metadata or ""),
        "participant_attributes": len(json.dumps(dict(participant.attributes))),
        # The envelope travels as room metadata and again in each agent's job metadata.
        "context": 0 if settings is None else settings.ByteSize(),
    }
    return check_token_size(token, config.max_token_bytes, field=max(parts, key=parts.__getitem__))


def _hook_attributes(value: Any, key: str) -> dict[str, str]:
    return check_attributes(dict(value) if hasattr(value, "items") else value, key)


def _check_unicode(value: str, key: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise ValidationFailed(
            f"{key} is not valid Unicode (it holds a lone UTF-16 surrogate).", field=key
        ) from None


def _is_unicode(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _outermost(path: Any) -> Any:
    """The first step of ``path``: a depth problem is the whole field's, not one leaf's."""
    while path is not None and path[0] is not None:
        path = path[0]
    return path


def _path(path: Any) -> str:
    parts: list[Any] = []
    while path is not None:
        path, part = path
        parts.append(part)
    text = ""
    for part in reversed(parts):
        text = f"{text}[{part}]" if isinstance(part, int) else _join(text, _shown(part))
    return text


def _join(base: str, name: str) -> str:
    if not name:
        return base
    if not base or name.startswith("["):
        return base + name
    return f"{base}.{name}"


def _shown(name: str) -> str:
    """A key as it may appear in a field path: printable, and short."""
    shown = name.encode("utf-8", "backslashreplace").decode()
    return shown if len(shown) <= 64 else shown[:61] + "..."
