"""The blueprint carrying the extension's routes, its JSON errors and its response headers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Rule

from ..csrf import carries_ambient_credentials
from ..errors import MethodNotAllowed, NotFound, OnboardingError, as_api_error
from ..state import EXTENSION_KEY, OnboardingState, get_state
from .bodies import limit_body
from .health_view import add_health_route
from .invite_views import delete_invite, get_invites, post_invite
from .report_view import receive_report
from .session_views import delete_session, patch_context, show_room
from .token_view import serve_token
from .webhook_view import receive_webhook

#: Every method of HTTP's method registry a client is likely to send: each gets the JSON 405.
#: (Routing fails before any blueprint is chosen, so only rules can answer them.)
_METHODS = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "QUERY"}
    | {"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT"}
)
#: The converter of the catch-all rule: any rest of the path, slashes and empty segments too.
_ANY_PATH = "livekit_onboarding_any_path"


class _AnyPath(BaseConverter):
    regex = ".*"
    part_isolating = False


def create_blueprint(name: str = "livekit_onboarding") -> Blueprint:
    """Build the blueprint; register it with any ``url_prefix`` (``init_app`` does so for you).

    The app it is registered on must have been given to :meth:`LiveKitOnboarding.init_app`.
    """
    bp = Blueprint(name, __name__)
    bp.record_once(_add_converter)
    bp.register_error_handler(HTTPException, render_error)
    bp.before_request(_limit_body)
    bp.before_request(_check_csrf)
    bp.record(_leave_the_app_wide_csrf_check)
    bp.after_request(_no_store)
    add_route(bp, "/token", "token", serve_token, ["POST"])
    add_route(bp, "/webhook", "webhook", receive_webhook, ["POST"])
    _rule(bp, "/rooms/<room_name>", "room_status", show_room, ["GET"])
    _rule(bp, "/rooms/<room_name>", "end_session", delete_session, ["DELETE"])
    refuse_other_methods(bp, "/rooms/<room_name>", "room", ["GET", "DELETE"])
    add_route(bp, "/rooms/<room_name>/context", "update_context", patch_context, ["PATCH"])
    add_route(bp, "/rooms/<room_name>/reports", "report", receive_report, ["POST"])
    _rule(bp, "/rooms/<room_name>/invites", "create_invite", post_invite, ["POST"])
    _rule(bp, "/rooms/<room_name>/invites", "list_invites", get_invites, ["GET"])
    refuse_other_methods(bp, "/rooms/<room_name>/invites", "invites", ["GET", "POST"])
    add_route(
        bp, "/rooms/<room_name>/invites/<invite_id>", "revoke_invite", delete_invite, ["DELETE"]
    )
    add_route(bp, "/openapi.json", "openapi", openapi_document, ["GET"])
    bp.record(add_health_route)
    bp.record(_claim_the_prefix)
    bp.record(_refuse_every_other_method)
    return bp


def openapi_document() -> Response:
    """``GET {prefix}/openapi.json``: the OpenAPI 3.1 description of the extension's routes.

    Served unless ``LIVEKIT_ONBOARDING_OPENAPI`` is off; its ``servers`` entry is the prefix
    the blueprint is mounted at.
    """
    if not get_state().config.openapi:
        raise NotFound()
    document = json.loads(resources.files("flask_livekit_onboarding").joinpath(OPENAPI).read_text())
    prefix = url_for(".token")[: -len("/token")]
    document["servers"] = [{"url": prefix or "/"}]
    return Response(json.dumps(document), mimetype="application/json")


#: The OpenAPI document shipped in the package.
OPENAPI = "openapi.json"


def _not_found(**_: Any) -> Response:
    raise NotFound()


def _add_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault(_ANY_PATH, _AnyPath)


def _claim_the_prefix(state: BlueprintSetupState) -> None:
    """Answer every other path under the prefix with the JSON 404.

    Not Flask's HTML page, and no 308 redirect for a doubled or trailing slash. Mounted
    without a prefix, the blueprint leaves the app's other paths alone.
    """
    if not (state.url_prefix or "").strip("/"):
        return
    methods = sorted(_METHODS | {"OPTIONS"})
    for rule, endpoint, options in (
        ("/", "not_found", {"strict_slashes": False}),
        (f"/<{_ANY_PATH}:rest>", "not_found_below", {}),
    ):
        state.add_url_rule(
            rule,
            endpoint,
            _not_found,
            methods=methods,
            merge_slashes=False,
            provide_automatic_options=False,
            **options,
        )


def _refuse_every_other_method(state: BlueprintSetupState) -> None:
    """Answer any method no rule lists (``FOO``, ``PURGE``, ...) on the blueprint's paths with
    its JSON 405 (or 404 below the prefix), like the registered ones.

    A werkzeug rule without methods matches every method; added after the blueprint's own
    rules, it is only reached when none of them takes the method.
    """
    endpoint_prefix = ".".join(p for p in (state.name_prefix, state.name) if p) + "."
    paths: dict[str, tuple[Rule, set[str]]] = {}
    for rule in list(state.app.url_map.iter_rules()):
        if not rule.endpoint.startswith(endpoint_prefix) or rule.rule in paths:
            continue
        served = {
            method
            for other in state.app.url_map.iter_rules()
            if other.rule == rule.rule and not other.endpoint.endswith(_REFUSING)
            for method in other.methods or ()
        }
        paths[rule.rule] = (rule, served)
    for index, (path, (rule, served)) in enumerate(paths.items()):
        # Named like the other refusals, so the CSRF check and _served_methods pass them by.
        endpoint = f"{endpoint_prefix}any_method_{index}_other_methods"
        if rule.endpoint.endswith((".not_found", ".not_found_below")):
            view: Callable[..., Any] = _not_found
        else:
            view = _refusal(sorted(served - {"HEAD", "OPTIONS"}))
        state.app.url_map.add(
            Rule(
                path,
                endpoint=endpoint,
                methods=None,
                merge_slashes=False,
                strict_slashes=rule.strict_slashes,
            )
        )
        state.app.view_functions[endpoint] = view


def _rule(
    bp: Blueprint,
    rule: str,
    endpoint: str,
    view: Callable[..., Any],
    methods: Iterable[str],
    **options: Any,
) -> None:
    # merge_slashes=False: "/livekit//token" is an unknown path (404), not a 308 to "/token".
    bp.add_url_rule(rule, endpoint, view, methods=sorted(methods), merge_slashes=False, **options)


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


def _leave_the_app_wide_csrf_check(setup: BlueprintSetupState) -> None:
    # The app-wide check would also refuse the signed webhook, a bearer-token client and a
    # wrong method's 405; ``_check_csrf`` checks what needs it instead.
    state: OnboardingState | None = setup.app.extensions.get(EXTENSION_KEY)
    if state is not None and state.csrf is not None:
        state.csrf.exempt(setup.blueprint)


def _check_csrf() -> None:
    csrf = get_state().csrf
    if csrf is None or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    endpoint = (request.endpoint or "").rpartition(".")[2]
    # The webhook is authenticated by LiveKit's signature; refusals change nothing.
    if endpoint == "webhook" or endpoint.endswith(_REFUSING_NAMES):
        return
    if carries_ambient_credentials(request):
        csrf.protect()


def _no_store(response: Response) -> Response:
    # Tokens, contexts and participant lists must never be cached by a browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    if request.method == "OPTIONS" and response.status_code < 300:
        response.headers["Allow"] = ", ".join(_served_methods())
    return response


def _served_methods() -> list[str]:
    """The methods the requested path really serves; werkzeug's automatic ``OPTIONS`` answer
    would also list those of the rules that only refuse them with a 405."""
    rule = request.url_rule
    if rule is None:
        return []
    methods = {"OPTIONS"}
    for other in current_app.url_map.iter_rules():
        if other.rule == rule.rule and not other.endpoint.endswith(_REFUSING):
            methods |= other.methods or set()
    return sorted(methods)


_REFUSING = ("_other_methods", ".not_found", ".not_found_below")
_REFUSING_NAMES = tuple(suffix.lstrip(".") for suffix in _REFUSING)


def add_route(
    bp: Blueprint,
    rule: str,
    endpoint: str,
    view: Callable[..., Any],
    methods: Iterable[str],
) -> None:
    """Add a route, and a JSON 405 for the methods it does not take."""
    _rule(bp, rule, endpoint, view, methods)
    refuse_other_methods(bp, rule, endpoint, methods)


def refuse_other_methods(bp: Blueprint, rule: str, endpoint: str, taken: Iterable[str]) -> None:
    """Answer the methods ``rule`` does not take with the blueprint's JSON 405.

    Routing errors are raised before a blueprint's error handlers are chosen, so without this
    rule a wrong method would get Flask's HTML page instead of the blueprint's JSON.
    """
    valid = sorted(set(taken))
    others = sorted(_METHODS - set(valid))
    if others:
        _rule(bp, rule, f"{endpoint}_other_methods", _refusal(valid), others)


def _refusal(valid: list[str]) -> Callable[..., Response]:
    # A plain named function, not a partial: host extensions (Flask-WTF's CSRFProtect)
    # read ``__module__`` and ``__name__`` of every view they see.
    def method_not_allowed(**_: Any) -> Response:
        raise MethodNotAllowed(valid_methods=valid)

    return method_not_allowed
