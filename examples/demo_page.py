"""The browser demo page, shared by the example apps.

An ordinary blueprint of the host app: one HTML page plus the ``livekit-client`` bundle built
from ``examples/frontend`` (``npm ci && npm run build`` writes ``examples/static/demo.js``).
The page only needs to know where the token endpoint is mounted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, render_template

BUNDLE = Path(__file__).parent / "static" / "demo.js"

#: Register it on the host app; its static files are served under ``/demo-static``.
demo = Blueprint(
    "demo",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/demo-static",
)


def render_demo_page(**context: Any) -> str:
    """Render the page; the token endpoint follows ``LIVEKIT_ONBOARDING_URL_PREFIX``."""
    if not BUNDLE.is_file():
        abort(
            503,
            "The demo bundle is not built: run `npm ci && npm run build` in examples/frontend "
            "(./scripts/demo.sh does it for you).",
        )
    prefix = current_app.config.get("LIVEKIT_ONBOARDING_URL_PREFIX", "/livekit").rstrip("/")
    context.setdefault("title", "Live onboarding")
    # Where the deployment lets clients name themselves (a demo with guests, who have no name
    # from a login), ask for one, sent as participant_name, so the agent can greet them by it.
    # Otherwise names come from the app's login, never from the page.
    client_names = current_app.config.get("LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY")
    context.setdefault("ask_name", str(client_names).strip().lower() in ("true", "1", "yes", "on"))
    return render_template(
        "demo.html", token_endpoint=f"{prefix}/token", rooms_endpoint=f"{prefix}/rooms", **context
    )
