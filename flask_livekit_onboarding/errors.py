"""Exceptions of the extension; the HTTP ones render as one JSON error shape.

Every HTTP error is an :class:`ApiError` and also the matching werkzeug exception
(:class:`Forbidden` is a ``werkzeug.exceptions.Forbidden``), so a host can catch or render
them like any other werkzeug error.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Response, json
from werkzeug import exceptions as wz


class OnboardingError(Exception):
    """Base class of every error raised by flask-livekit-onboarding."""


class ConfigurationError(OnboardingError, ValueError, click.ClickException):
    """The app's configuration or hooks are missing or invalid.

    Also a ``click.ClickException``: when an app factory's ``init_app`` raises it while the
    ``flask`` command loads the app, every command (``flask livekit check``, ``flask run``)
    prints the one line ``Error: <what to fix>`` and exits with status 1, not a traceback.
    """

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, message)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error answer: ``{"error": {"code", "message", "field"?}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


class ApiError(OnboardingError, wz.HTTPException):
    """An HTTP error answered as ``{"error": {"code": ..., "message": ..., "field": ...}}``.

    Rendering a host's own way: ``app.errorhandler(ApiError)`` (or a per-status handler such
    as ``app.errorhandler(403)``) takes over for the extension's routes.
    """

    #: None on the base class, so ``app.errorhandler(ApiError)`` covers every status.
    code: int | None = None
    error_code = "error"
    description = "The request failed."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(description=message or self.description)
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.error_code, self.description or "", self.field)

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        response = Response(
            json.dumps(self.to_dict()), status=self.code or 500, mimetype="application/json"
        )
        for name, value in self.extra_headers():
            response.headers[name] = value
        return response

    def extra_headers(self) -> list[tuple[str, str]]:
        """Headers the status requires besides the body (``Allow`` for a 405)."""
        return []


class BadRequest(ApiError, wz.BadRequest):
    code = 400
    error_code = "bad_request"
    description = "The request is malformed."


class Unauthorized(ApiError, wz.Unauthorized):
    code = 401
    error_code = "unauthorized"
    description = "Sign in first: no identity for this request."


class Forbidden(ApiError, wz.Forbidden):
    code = 403
    error_code = "forbidden"
    description = "Not allowed."


class NotFound(ApiError, wz.NotFound):
    code = 404
    error_code = "not_found"
    description = "No such route of the onboarding extension."


class RoomNotFound(NotFound):
    code = 404
    error_code = "room_not_found"
    description = "No such onboarding room."


class MethodNotAllowed(ApiError, wz.MethodNotAllowed):
    code = 405
    error_code = "method_not_allowed"
    description = "This route does not take that HTTP method."

    def __init__(self, valid_methods: list[str], message: str | None = None) -> None:
        ApiError.__init__(self, message)
        self.valid_methods = valid_methods

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Allow", ", ".join(self.valid_methods or []))]


class RequestEntityTooLarge(ApiError, wz.RequestEntityTooLarge):
    code = 413
    error_code = "request_entity_too_large"
    description = "The request body is too large."


class UnsupportedMediaType(ApiError, wz.UnsupportedMediaType):
    code = 415
    error_code = "unsupported_media_type"
    description = "Send the request body as application/json."


class ValidationFailed(ApiError, wz.UnprocessableEntity):
    code = 422
    error_code = "validation_failed"
    description = "A field of the request is invalid."


class TooManyRequests(ApiError, wz.TooManyRequests):
    code = 429
    error_code = "too_many_requests"
    description = "Too many requests; try again later."


class LiveKitError(ApiError, wz.BadGateway):
    """LiveKit answered with an error this extension cannot turn into a client error."""

    code = 502
    error_code = "livekit_error"
    description = "LiveKit answered with an error."


class LiveKitUnavailable(ApiError, wz.ServiceUnavailable):
    code = 503
    error_code = "livekit_unavailable"
    description = "LiveKit cannot be reached right now; try again shortly."


class DedupeUnavailable(ApiError, wz.ServiceUnavailable):
    """The shared de-duplication store cannot be reached; LiveKit retries on a 503."""

    code = 503
    error_code = "dedupe_unavailable"
    description = "The webhook de-duplication store is unavailable; retry later."


class LiveKitTimeout(ApiError, wz.GatewayTimeout):
    code = 504
    error_code = "livekit_timeout"
    description = "LiveKit did not answer in time; try again shortly."


#: The extension's error for each werkzeug error Flask or werkzeug may raise inside its routes.
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: RequestEntityTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: TooManyRequests,
}


def as_api_error(error: wz.HTTPException) -> ApiError:
    """``error`` as an :class:`ApiError` (werkzeug's own errors get the extension's shape)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, wz.MethodNotAllowed):
        return MethodNotAllowed(list(error.valid_methods or []))
    kind = _BY_STATUS.get(error.code or 400)
    if kind is not None:
        converted = kind(error.description)
    else:
        converted = ApiError(error.description)
        converted.code = error.code or 500
        converted.error_code = (error.name or "error").lower().replace(" ", "_")
    converted.__cause__ = error
    return converted


class ContextConflict(ApiError, wz.Conflict):
    """The room's metadata changed under a context update; the update may not have been kept."""

    code = 409
    error_code = "context_conflict"
    description = "The room's context was changed by someone else meanwhile; send the update again."


class RoomOccupied(ApiError, wz.Conflict):
    """A live room under the name a session needs carries no onboarding session of this
    deployment and has people in it: the library does not close it under them."""

    code = 409
    error_code = "room_occupied"
    description = "The room is live without an onboarding session of this deployment."


class ContextBusy(ApiError, wz.ServiceUnavailable):
    """Another update of the same room held it too long, or LiveKit did not confirm the write."""

    code = 503
    error_code = "context_busy"
    description = "Another update of this room's context is in progress; retry shortly."


class WebhookNotDelivered(ApiError, wz.ServiceUnavailable):
    """At-least-once delivery could not hand the event over now; LiveKit retries on a 503.

    ``retry_after`` (seconds) becomes a ``Retry-After`` header, which LiveKit's sender honours.
    """

    code = 503
    error_code = "webhook_not_delivered"
    description = "The event was not delivered; it will be taken again on retry."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after))] if self.retry_after else []


class ReportConflict(ApiError, wz.Conflict):
    """A report for a session that has ended or was replaced, or a second, different outcome."""

    code = 409
    error_code = "report_conflict"
    description = "The report does not fit the session's current state."


class ReportNotDelivered(ApiError, wz.ServiceUnavailable):
    """A required receiver of a report's signals failed, or another request holds the report.

    ``retry_after`` (seconds) becomes a ``Retry-After`` header, which the agent's helper honours.
    """

    code = 503
    error_code = "report_not_delivered"
    description = "The report was not delivered; send it again."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after))] if self.retry_after else []


class InviteMalformed(NotFound):
    """The invite code sent is not shaped like one of this extension's codes: no invite."""

    code = 404
    error_code = "invite_malformed"
    description = "The invite code is malformed; send it exactly as it was given."


class InviteNotFound(NotFound):
    """No invite matches the code or id (never issued here, or forgotten since)."""

    code = 404
    error_code = "invite_not_found"
    description = "No such invite."


class InviteWrongRoom(ApiError, wz.Forbidden):
    """The invite is for another room than the one asked for."""

    code = 403
    error_code = "invite_wrong_room"
    description = "This invite is for another room."


class InviteGone(ApiError, wz.Gone):
    """The invite existed but can no longer admit anybody; ``error_code`` says why."""

    code = 410
    description = "This invite can no longer be used."


class InviteExpired(InviteGone):
    error_code = "invite_expired"
    description = "This invite has expired; ask for a new one."


class InviteRevoked(InviteGone):
    error_code = "invite_revoked"
    description = "This invite was revoked."


class InviteUsedUp(InviteGone):
    error_code = "invite_used_up"
    description = "This invite has been used as many times as it allows."


class InviteSessionEnded(InviteGone):
    error_code = "invite_session_ended"
    description = "The onboarding session this invite was for has ended."


class TooManyInvites(ValidationFailed):
    """The session already has as many live invites as the deployment allows."""

    error_code = "too_many_invites"
    description = "This session has too many live invites; revoke one first."


class InviteStoreUnavailable(ApiError, wz.ServiceUnavailable):
    """The shared invite store cannot be reached."""

    code = 503
    error_code = "invite_store_unavailable"
    description = "The invite store is unavailable; retry shortly."
