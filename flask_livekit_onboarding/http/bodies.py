"""Reading request bodies: size limit, JSON, and the context-update body."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import IO, Annotated, Any

from flask import request
from pydantic import BaseModel, ConfigDict, WithJsonSchema, model_validator

from ..errors import BadRequest, RequestEntityTooLarge, UnsupportedMediaType, ValidationFailed
from ..jsondepth import too_deep
from ..livekit_limits import MAX_BODY_DEPTH, check_json
from ..sessions import CONTEXT_MODES, ContextMode
from ..validation import checked, problem, validated


def limit_body(limit: int) -> None:
    """Bound every read of this request's body to ``limit`` bytes, however it is sent.

    Runs before the view: a declared length over the limit is refused at once, and a chunked
    body is cut off with a 413 as soon as it passes the limit, for the views and for any
    signal receiver that reads ``request.get_data()``.
    """
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    environ = request.environ
    environ["wsgi.input"] = _BoundedInput(environ["wsgi.input"], limit)


def read_body() -> bytes:
    """The raw request body (bounded by :func:`limit_body`), cached for later readers."""
    return request.get_data(cache=True)


class _BoundedInput(io.RawIOBase):
    """A WSGI input stream that raises 413 once more than ``limit`` bytes were read."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        room = self._limit + 1 - self._read
        if size is None or size < 0 or size > room:
            size = room
        data = self._stream.read(size)
        self._read += len(data)
        if self._read > self._limit:
            raise _too_large(self._limit)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_json_object() -> dict[str, Any]:
    """The request's JSON object; an empty body counts as ``{}``.

    Wrong content type -> 415, invalid JSON, not an object or nested deeper than
    :data:`~flask_livekit_onboarding.livekit_limits.MAX_BODY_DEPTH` -> 400, too large -> 413; a
    string that is not valid Unicode (a lone surrogate spelled ``\\ud800``) -> 422 naming it.
    """
    raw = read_body()
    if not raw.strip():
        return {}
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'no content type'}."
        )
    if too_deep(raw, MAX_BODY_DEPTH):
        raise BadRequest(f"The body is nested deeper than {MAX_BODY_DEPTH} levels.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest(f"The body is nested deeper than {MAX_BODY_DEPTH} levels.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    check_json(body, "", MAX_BODY_DEPTH)
    return body


def _json_object(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{key} must be a JSON object.", field=key)
    return value


def _mode(value: Any, key: str) -> ContextMode:
    if value not in CONTEXT_MODES:
        raise ValidationFailed(f"mode must be one of {', '.join(CONTEXT_MODES)}.", field="mode")
    mode: ContextMode = value
    return mode


class ContextUpdateBody(BaseModel):
    """A context update: the host's context, the users' notes (client), or both."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"anyOf": [{"required": ["context"]}, {"required": ["client"]}]},
    )

    context: Annotated[
        dict[str, Any] | None, checked(_json_object, none=False), WithJsonSchema({"type": "object"})
    ] = None
    client: Annotated[
        dict[str, Any] | None, checked(_json_object, none=False), WithJsonSchema({"type": "object"})
    ] = None
    mode: Annotated[
        ContextMode, checked(_mode, none=False), WithJsonSchema({"enum": list(CONTEXT_MODES)})
    ] = "merge"

    @model_validator(mode="before")
    @classmethod
    def _context_or_client(cls, body: Any) -> Any:
        # Unknown fields are named first, as they always were.
        known = isinstance(body, dict) and not set(body) - set(cls.model_fields)
        if known and "context" not in body and "client" not in body:
            raise problem("Send context (the host's) or client (your notes).", "context")
        return body


def parse_context_update(
    body: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, ContextMode]:
    """``{"context"?: {...}, "client"?: {...}, "mode"?: "merge" | "replace"}``.

    At least one of ``context`` (the server context) and ``client`` (the users' notes);
    422 names the bad field.
    """
    parsed = validated(ContextUpdateBody, body)
    return parsed.context, parsed.client, parsed.mode


def _too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"The request body is larger than {limit} bytes.")
