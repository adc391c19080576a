"""``GET {prefix}/health``: readiness of LiveKit (and Redis), served when configured."""

from __future__ import annotations

from flask import Response, jsonify
from flask.blueprints import BlueprintSetupState

from ..health import check_health
from ..state import EXTENSION_KEY, get_state


def health() -> tuple[Response, int]:
    """200 with each dependency's latency when ready; 503 naming what is down."""
    report = check_health(get_state())
    return jsonify(report.to_dict()), 200 if report.ready else 503


def add_health_route(setup: BlueprintSetupState) -> None:
    """Mount the route only where ``LIVEKIT_ONBOARDING_HEALTH_ROUTE`` is on; elsewhere the
    path stays an unknown one (404)."""
    state = setup.app.extensions.get(EXTENSION_KEY)
    if state is None or not state.config.health_route:
        return
    # The prefix's catch-all answers other methods with the JSON 404.
    setup.add_url_rule("/health", "health", health, methods=["GET"])
