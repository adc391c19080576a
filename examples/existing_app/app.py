"""An app that already has users: identity from its own login, context from the user's profile.

Run it from the repository root::

    cp examples/existing_app/.env.example examples/existing_app/.env   # then edit it
    flask --app examples.existing_app.app run

Sign in as ``ada`` (a customer) or ``grace`` (staff), password ``onboarding``. The login is a
plain form on Flask's session to keep the example dependency-free; with Flask-Login the
identity loader would read ``current_user`` instead of ``session["user_id"]``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from dotenv import load_dotenv
from flask import Flask, flash, g, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from examples.demo_page import demo, render_demo_page
from flask_livekit_onboarding import Identity, LiveKitOnboarding, OnboardingRoom


@dataclass(frozen=True)
class User:
    """The host app's own user record (a database row in a real app)."""

    id: int
    username: str
    name: str
    password_hash: str
    role: str = "customer"
    profile: Mapping[str, Any] = field(default_factory=dict)


_PASSWORD = generate_password_hash("onboarding")
USERS = {
    user.username: user
    for user in (
        User(
            id=42,
            username="ada",
            name="Ada Lovelace",
            password_hash=_PASSWORD,
            profile={
                "company": "Analytical Engines Ltd",
                "plan": "pro",
                "locale": "en-GB",
                "step": "connect-data-source",
                "goals": ["weekly reports", "team dashboards"],
            },
        ),
        User(id=7, username="grace", name="Grace Hopper", password_hash=_PASSWORD, role="staff"),
    )
}


def user_by_id(user_id: object) -> User | None:
    return next((u for u in USERS.values() if u.id == user_id), None)


onboarding = LiveKitOnboarding()


@onboarding.identity_loader
def load_identity() -> Identity | None:
    """The signed-in user, as LiveKit should know them; None makes the token endpoint answer 401."""
    user = user_by_id(session.get("user_id"))
    if user is None:
        return None
    return Identity(
        identity=f"user-{user.id}",
        name=user.name,
        metadata=json.dumps({"username": user.username}),
        attributes={"role": user.role},
    )


@onboarding.context_provider
def onboarding_context(identity: Identity) -> Mapping[str, Any]:
    """Read from the user's profile: the room metadata tells everyone (and an agent) who this is."""
    user = user_by_id(session.get("user_id"))
    profile = dict(user.profile) if user else {}
    return {"customer": identity.name, **profile}


@onboarding.room_authorizer
def may_access(identity: Identity, room: OnboardingRoom, action: str) -> bool:
    """Staff may join, view and steer (change the context of) a customer's onboarding room.

    Owners need no permission for their own room, except to change the context: that is the
    host's word, so only staff (and the app's own code) may.
    """
    return identity.attributes.get("role") == "staff" and action in {
        "join",
        "view",
        "update_context",
    }


F = TypeVar("F", bound=Callable[..., Any])


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("login", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    load_dotenv(Path(__file__).with_name(".env"))  # real environment variables win
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_SECRET_KEY -> SECRET_KEY
    app.config.from_mapping({k: v for k, v in os.environ.items() if k.startswith("LIVEKIT_")})
    app.config.update(config or {})
    if not app.config["SECRET_KEY"]:
        # Only for trying it out: sign-ins then end when the process restarts.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    onboarding.init_app(app)
    app.register_blueprint(demo)

    @app.before_request
    def load_user() -> None:
        g.user = user_by_id(session.get("user_id"))

    @app.get("/")
    @login_required
    def profile() -> str:
        return render_template("profile.html", user=g.user, title="Your profile")

    @app.get("/onboarding")
    @login_required
    def start_onboarding() -> str:
        return render_demo_page(
            user=g.user.name,
            logout_url=url_for("logout"),
            intro="A member of our team (or our onboarding assistant) will meet you in a private "
            "room that already knows your plan and where you are in the setup.",
        )

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            user = USERS.get(request.form.get("username", "").strip().lower())
            if user and check_password_hash(user.password_hash, request.form.get("password", "")):
                session.clear()
                session["user_id"] = user.id
                target = request.args.get("next", "")
                local = target.startswith("/") and not target.startswith("//")
                return redirect(target if local else url_for("profile"))  # never off-site
            flash("Unknown username or wrong password.")
        return render_template("login.html", title="Sign in")

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))

    return app
