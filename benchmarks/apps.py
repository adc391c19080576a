"""The benchmarked variants, as WSGI app factories gunicorn can call by name.

``gunicorn 'benchmarks.apps:create_app("ours-eager")'`` serves one variant. Every variant answers
``POST /livekit/token`` with the same JSON shape and signs a token for the same identity, name,
metadata, attributes and onboarding context, in a fresh room per request (every click on
"start onboarding" is a new room). LiveKit credentials come from ``LIVEKIT_URL``,
``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` in the environment, which the harness sets.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import gc
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request

VARIANTS = ("baseline-flask", "baseline-livekit-api", "ours-on_join", "naive-eager", "ours-eager")

IDENTITY = "bench-user-42"
NAME = "Ada Bench"
METADATA = '{"plan":"pro"}'
ATTRIBUTES = {"role": "customer"}
CONTEXT = {"plan": "pro", "locale": "en", "step": "welcome"}
ROOM_PREFIX = "onboarding-"
TOKEN_TTL = 900
#: Short, so the rooms created by the eager variants do not pile up in livekit-server.
#: ``BENCH_EMPTY_TIMEOUT`` (``--empty-timeout``) changes it, to see what expiring rooms cost.
EMPTY_TIMEOUT = int(os.environ.get("BENCH_EMPTY_TIMEOUT", "10"))
DEPARTURE_TIMEOUT = 20


def create_app(variant: str) -> Flask:
    """Build the Flask app for ``variant`` (one of :data:`VARIANTS`)."""
    factories: dict[str, Callable[[], Flask]] = {
        "baseline-flask": _baseline_flask,
        "baseline-livekit-api": _baseline_livekit_api,
        "ours-on_join": lambda: _ours("on_join"),
        "naive-eager": _naive_eager,
        "ours-eager": lambda: _ours("eager"),
    }
    if variant not in factories:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    # The host configures logging, so library warnings (and asyncio's unclosed-session and
    # loop errors) reach gunicorn's stderr with a level the harness can look for.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    app = factories[variant]()
    timing_dir = os.environ.get(TIMING_DIR_ENV)
    if timing_dir:
        app.wsgi_app = TimedRequests(app.wsgi_app, timing_dir)  # type: ignore[method-assign]
    return app


#: Where :class:`TimedRequests` writes; unset, requests are not timed at all.
TIMING_DIR_ENV = "BENCH_TIMING_DIR"
#: The header the open-loop load generator numbers its requests with.
SEQ_HEADER = "HTTP_X_BENCH_SEQ"


class TimedRequests:
    """WSGI middleware: when a request carries ``X-Bench-Seq``, write when the app started and
    finished it (epoch seconds), one line per request in a per-process file.

    Joined with the load generator's own timestamps, this splits a request's latency into the
    wait before the app got it (gunicorn: a free thread, the GIL) and the time spent in it
    (for the eager variants, mostly the LiveKit call). Requests without the header (wrk's) pay
    one dict lookup. Garbage-collector passes longer than 1 ms are written too (``gc`` lines),
    to tell a pause of the whole process from a wait on LiveKit.
    """

    def __init__(self, app: Callable[..., Any], directory: str) -> None:
        self.app = app
        self.directory = directory
        self.file: Any = None
        self.pid = 0
        self.lock = threading.Lock()
        self.gc_started = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.gc_started = time.time()
            return
        finished = time.time()
        if finished - self.gc_started > 0.001 and self.file is not None and not self.file.closed:
            line = f"gc {self.gc_started:.6f} {finished:.6f} {info.get('generation', -1)}\n"
            with contextlib.suppress(ValueError):  # closed at exit by another thread
                self.file.write(line)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        seq = environ.get(SEQ_HEADER)
        if seq is None:
            return self.app(environ, start_response)
        started = time.time()
        result = self.app(environ, start_response)
        finished = time.time()
        line = f"{seq} {started:.6f} {finished:.6f} {threading.get_ident()}\n"
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                path = os.path.join(self.directory, f"timing-{self.pid}.txt")
                self.file = open(path, "a", buffering=1)  # noqa: SIM115 - kept for the process
                atexit.register(self.file.close)
            self.file.write(line)
        return result


def _credentials() -> tuple[str, str, str]:
    return (
        os.environ["LIVEKIT_URL"],
        os.environ["LIVEKIT_API_KEY"],
        os.environ["LIVEKIT_API_SECRET"],
    )


def _room_name() -> str:
    return ROOM_PREFIX + secrets.token_urlsafe(16)


def _room_metadata() -> str:
    record = {"v": 1, "owner": IDENTITY, "context": CONTEXT, "created_at": int(time.time())}
    return json.dumps({"onboarding": record}, separators=(",", ":"))


def _created(server_url: str, token: str, room: str) -> Any:
    response = jsonify(
        server_url=server_url, participant_token=token, room_name=room, participant_name=NAME
    )
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def _ours(mode: str) -> Flask:
    from flask_livekit_onboarding import Identity, LiveKitOnboarding

    url, key, secret = _credentials()
    app = Flask("bench-ours-" + mode)
    app.config.update(
        LIVEKIT_URL=url,
        LIVEKIT_API_KEY=key,
        LIVEKIT_API_SECRET=secret,
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
        LIVEKIT_ONBOARDING_ROOM_PREFIX=ROOM_PREFIX,
        LIVEKIT_ONBOARDING_TOKEN_TTL=TOKEN_TTL,
        LIVEKIT_ONBOARDING_EMPTY_TIMEOUT=EMPTY_TIMEOUT,
        LIVEKIT_ONBOARDING_DEPARTURE_TIMEOUT=DEPARTURE_TIMEOUT,
    )
    onboarding = LiveKitOnboarding()

    @onboarding.identity_loader
    def load_identity() -> Identity:
        return Identity(identity=IDENTITY, name=NAME, metadata=METADATA, attributes=ATTRIBUTES)

    @onboarding.context_provider
    def onboarding_context(identity: Identity) -> dict[str, Any]:
        return dict(CONTEXT)

    onboarding.init_app(app)
    return app


def _baseline_flask() -> Flask:
    """A bare route signing the same claims with PyJWT: the ceiling for a token route."""
    import jwt

    url, key, secret = _credentials()
    app = Flask("bench-baseline")

    @app.post("/livekit/token")
    def token() -> Any:
        request.get_json(silent=True)
        room = _room_name()
        now = int(time.time())
        claims = {
            "iss": key,
            "sub": IDENTITY,
            "nbf": now,
            "exp": now + TOKEN_TTL,
            "name": NAME,
            "metadata": METADATA,
            "attributes": ATTRIBUTES,
            "video": {
                "roomJoin": True,
                "room": room,
                "canPublish": True,
                "canSubscribe": True,
                "canPublishData": True,
            },
            "roomConfig": {
                "name": room,
                "emptyTimeout": EMPTY_TIMEOUT,
                "departureTimeout": DEPARTURE_TIMEOUT,
                "metadata": _room_metadata(),
            },
        }
        return _created(url, jwt.encode(claims, secret, algorithm="HS256"), room)

    return app


def _baseline_livekit_api() -> Flask:
    """The bare route again, with the token made by livekit-api's ``AccessToken`` instead of
    PyJWT: what livekit-api's own token code costs, apart from anything of this package."""
    from livekit import api

    url, key, secret = _credentials()
    app = Flask("bench-baseline-livekit-api")
    ttl = datetime.timedelta(seconds=TOKEN_TTL)

    @app.post("/livekit/token")
    def token() -> Any:
        request.get_json(silent=True)
        room = _room_name()
        jwt = (
            _access_token(api, key, secret, room)
            .with_room_config(
                api.RoomConfiguration(
                    name=room,
                    empty_timeout=EMPTY_TIMEOUT,
                    departure_timeout=DEPARTURE_TIMEOUT,
                    metadata=_room_metadata(),
                )
            )
            .with_ttl(ttl)
            .to_jwt()
        )
        return _created(url, jwt, room)

    return app


def _access_token(api: Any, key: str, secret: str, room: str) -> Any:
    """livekit-api's token builder (``api`` is ``livekit.api``) with the identity, name,
    metadata, attributes and grants common to every variant's token, for ``room``."""
    return (
        api.AccessToken(key, secret)
        .with_identity(IDENTITY)
        .with_name(NAME)
        .with_metadata(METADATA)
        .with_attributes(ATTRIBUTES)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
    )


def _naive_eager() -> Flask:
    """What livekit-api users commonly write in a sync view: a client per request."""
    from livekit import api

    url, key, secret = _credentials()
    app = Flask("bench-naive")

    async def create_room(name: str, metadata: str) -> None:
        lkapi = api.LiveKitAPI(url, key, secret)
        try:
            await lkapi.room.create_room(
                api.CreateRoomRequest(
                    name=name,
                    empty_timeout=EMPTY_TIMEOUT,
                    departure_timeout=DEPARTURE_TIMEOUT,
                    metadata=metadata,
                )
            )
        finally:
            await lkapi.aclose()

    @app.post("/livekit/token")
    def token() -> Any:
        request.get_json(silent=True)
        room = _room_name()
        asyncio.run(create_room(room, _room_metadata()))
        jwt = (
            _access_token(api, key, secret, room)
            .with_ttl(datetime.timedelta(seconds=TOKEN_TTL))
            .to_jwt()
        )
        return _created(url, jwt, room)

    return app
