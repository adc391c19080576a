"""Exceptions of the extension; the HTTP ones render as one JSON error shape."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException


class OnboardingError(Exception):
    """Base class of every error raised by flask-livekit-onboarding."""


class ConfigurationError(OnboardingError, ValueError):
    """The app's configuration or hooks are missing or invalid."""


class ApiError(OnboardingError, HTTPException):
    """An HTTP error answered as ``{"error": {"code": ..., "message": ..., "field": ...}}``.

    Subclasses are werkzeug ``HTTPException``\\ s, so a host app may override their rendering
    with ``app.errorhandler(ApiError)``.
    """

    code = 400
    error_code = "bad_request"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message or self.description)
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.error_code, "message": self.description}
        if self.field:
            body["field"] = self.field
        return {"error": body}

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        response = jsonify(self.to_dict())
        response.status_code = self.code or 500
        response.headers["Cache-Control"] = "no-store"
        return response


class BadRequest(ApiError):
    code = 400
    error_code = "bad_request"
    description = "The request is malformed."


class Unauthorized(ApiError):
    code = 401
    error_code = "unauthorized"
    description = "Sign in first: no identity for this request."


class Forbidden(ApiError):
    code = 403
    error_code = "forbidden"
    description = "Not allowed."


class RoomNotFound(ApiError):
    code = 404
    error_code = "room_not_found"
    description = "No such onboarding room."


class PayloadTooLarge(ApiError):
    code = 413
    error_code = "payload_too_large"
    description = "The request body is too large."


class UnsupportedMediaType(ApiError):
    code = 415
    error_code = "unsupported_media_type"
    description = "Send the request body as application/json."


class ValidationFailed(ApiError):
    code = 422
    error_code = "validation_failed"
    description = "A field of the request is invalid."


class LiveKitError(ApiError):
    """LiveKit answered with an error this extension cannot turn into a client error."""

    code = 502
    error_code = "livekit_error"
    description = "LiveKit answered with an error."


class LiveKitUnavailable(ApiError):
    code = 503
    error_code = "livekit_unavailable"
    description = "LiveKit cannot be reached right now; try again shortly."


class LiveKitTimeout(ApiError):
    code = 504
    error_code = "livekit_timeout"
    description = "LiveKit did not answer in time; try again shortly."


def http_error_response(error: HTTPException) -> Response:
    """Render any werkzeug error raised inside the blueprint in the extension's JSON shape."""
    if isinstance(error, ApiError):
        return error.get_response()
    code = error.code or 500
    name = (error.name or "error").lower().replace(" ", "_")
    response = jsonify({"error": {"code": name, "message": error.description or error.name}})
    response.status_code = code
    response.headers["Cache-Control"] = "no-store"
    allowed = dict(error.get_headers()).get("Allow")
    if allowed:
        response.headers["Allow"] = allowed
    return response
