"""The blueprint carrying the extension's routes, its JSON errors and its response headers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from ..errors import MethodNotAllowed, OnboardingError, as_api_error
from ..state import get_state
from .bodies import limit_body
from .session_views import end_session, room_status, update_context
from .token_view import issue_token
from .webhook_view import receive_webhook

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def create_blueprint(name: str = "livekit_onboarding") -> Blueprint:
    """Build the blueprint; register it with any ``url_prefix`` (``init_app`` does so for you).

    The app it is registered on must have been given to :meth:`LiveKitOnboarding.init_app`.
    """
    bp = Blueprint(name, __name__)
    bp.register_error_handler(HTTPException, render_error)
    bp.before_request(_limit_body)
    bp.after_request(_no_store)
    add_route(bp, "/token", "token", issue_token, ["POST"])
    add_route(bp, "/webhook", "webhook", receive_webhook, ["POST"])
    bp.add_url_rule("/rooms/<room_name>", "room_status", room_status, methods=["GET"])
    bp.add_url_rule("/rooms/<room_name>", "end_session", end_session, methods=["DELETE"])
    refuse_other_methods(bp, "/rooms/<room_name>", "room", ["GET", "DELETE"])
    add_route(bp, "/rooms/<room_name>/context", "update_context", update_context, ["PATCH"])
    return bp


def render_error(error: HTTPException) -> ResponseReturnValue:
    """Answer an HTTP error raised in the blueprint in the extension's JSON shape.

    A host's own ``app.errorhandler(ApiError)`` (or one for a subclass) renders it instead;
    a host's per-status handler (``app.errorhandler(403)``) already wins in Flask's lookup.
    """
    api_error = as_api_error(error)
    handler = _host_handler(api_error)
    if handler is not None:
        return handler(api_error)  # type: ignore[no-any-return]
    return api_error.get_response()


def _host_handler(error: OnboardingError) -> Callable[[Any], Any] | None:
    handlers = current_app.error_handler_spec.get(None, {}).get(None, {})
    for cls in type(error).__mro__:
        if issubclass(cls, OnboardingError) and cls in handlers:
            return handlers[cls]
    return None


def _limit_body() -> None:
    limit_body(get_state().config.max_body_bytes)


def _no_store(response: Response) -> Response:
    # Tokens, contexts and participant lists must never be cached by a browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def add_route(
    bp: Blueprint,
    rule: str,
    endpoint: str,
    view: Callable[..., Any],
    methods: Iterable[str],
) -> None:
    """Add a route, and a JSON 405 for the methods it does not take."""
    bp.add_url_rule(rule, endpoint, view, methods=sorted(methods))
    refuse_other_methods(bp, rule, endpoint, methods)


def refuse_other_methods(bp: Blueprint, rule: str, endpoint: str, taken: Iterable[str]) -> None:
    """Answer the methods ``rule`` does not take with the blueprint's JSON 405.

    Routing errors are raised before a blueprint's error handlers are chosen, so without this
    rule a wrong method would get Flask's HTML page instead of the blueprint's JSON.
    """
    valid = sorted(set(taken))
    others = sorted(_METHODS - set(valid))
    if others:
        refuse = partial(_method_not_allowed, valid)
        bp.add_url_rule(rule, f"{endpoint}_other_methods", refuse, methods=others)


def _method_not_allowed(valid: list[str], **_: Any) -> Response:
    raise MethodNotAllowed(valid_methods=valid)
