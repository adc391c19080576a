"""The smallest host app: an app factory, settings from ``.env``, the extension in a few lines.

Run it from the repository root::

    cp examples/minimal/.env.example examples/minimal/.env   # then edit it
    flask --app examples.minimal.app run

It runs in demo mode (``LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=true``): every visitor gets a random
guest identity. A real app registers an identity loader instead, see ``examples/existing_app``.

Pages on other origins (LiveKit's starter frontends on ``http://localhost:3000``) may call it
once their origin is listed in ``LIVEKIT_ONBOARDING_CORS_ORIGINS`` (see ``docs/starters.md``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask

from examples.demo_page import demo, render_demo_page
from flask_livekit_onboarding import Identity, LiveKitOnboarding

onboarding = LiveKitOnboarding()


@onboarding.context_provider
def onboarding_context(identity: Identity) -> Mapping[str, Any]:
    """What the onboarding room (and an agent joining it) should know about this session."""
    return {"product": "Acme Analytics", "plan": "trial", "locale": "en", "step": "welcome"}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    load_dotenv(Path(__file__).with_name(".env"))  # real environment variables win
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_SECRET_KEY -> SECRET_KEY
    # LiveKit's own variable names: LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, plus the
    # extension's LIVEKIT_ONBOARDING_* options (strings such as "true" or "900" are accepted).
    app.config.from_mapping({k: v for k, v in os.environ.items() if k.startswith("LIVEKIT_")})
    app.config.update(config or {})
    if not app.config["SECRET_KEY"]:
        # Demo mode keeps each guest's identity in the session cookie. Without a configured key,
        # guests simply get new identities when the process restarts.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    onboarding.init_app(app)  # POST /livekit/token and the session routes

    app.register_blueprint(demo)
    app.add_url_rule("/", "index", render_demo_page)
    return app
