"""The blueprint carrying the extension's routes and its JSON error rendering."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .errors import http_error_response
from .state import get_state

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def create_blueprint(name: str = "livekit_onboarding") -> Blueprint:
    """Build the blueprint; register it with any ``url_prefix`` (``init_app`` does so for you).

    The app it is registered on must have been given to :meth:`LiveKitOnboarding.init_app`.
    """
    from .session_views import register_session_routes
    from .token_view import issue_token
    from .webhook_view import receive_webhook

    bp = Blueprint(name, __name__)
    bp.before_request(_limit_body_size)
    bp.register_error_handler(HTTPException, http_error_response)
    add_route(bp, "/token", "token", issue_token, ["POST"])
    add_route(bp, "/webhook", "webhook", receive_webhook, ["POST"])
    register_session_routes(bp)
    return bp


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


def _limit_body_size() -> None:
    request.max_content_length = get_state().config.max_body_bytes
