"""The blueprint carrying the extension's routes and its JSON error rendering."""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.exceptions import HTTPException

from .errors import http_error_response
from .state import get_state
from .session_views import register_session_routes
from .token_view import issue_token
from .webhook_view import receive_webhook


def create_blueprint(name: str = "livekit_onboarding") -> Blueprint:
    """Build the blueprint; register it with any ``url_prefix`` (``init_app`` does so for you).

    The app it is registered on must have been given to :meth:`LiveKitOnboarding.init_app`.
    """
    bp = Blueprint(name, __name__)
    bp.before_request(_limit_body_size)
    bp.register_error_handler(HTTPException, http_error_response)
    bp.add_url_rule("/token", "token", issue_token, methods=["POST"])
    bp.add_url_rule("/webhook", "webhook", receive_webhook, methods=["POST"])
    register_session_routes(bp)
    return bp


def _limit_body_size() -> None:
    request.max_content_length = get_state().config.max_body_bytes
