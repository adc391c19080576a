"""The OpenAPI document: shipped in the package, served under the prefix, true to the routes."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from flask import Flask

DOCUMENT = json.loads(
    resources.files("flask_livekit_onboarding").joinpath("openapi.json").read_text()
)
REFUSING = ("_other_methods", ".not_found", ".not_found_below")


def routes(app: Flask, prefix: str) -> set[tuple[str, str]]:
    """``(path, method)`` of every route the blueprint serves, in OpenAPI's spelling."""
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("livekit_onboarding.") or rule.endpoint.endswith(REFUSING):
            continue
        path = re.sub(r"<(\w+)>", r"{\1}", rule.rule[len(prefix) :])
        for method in rule.methods or ():
            if method not in {"HEAD", "OPTIONS"}:
                served.add((path, method.lower()))
    return served


def test_the_document_lists_exactly_the_routes_the_blueprint_serves(app: Flask) -> None:
    documented = {
        (path, method)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == routes(app, "/livekit")
    assert DOCUMENT["openapi"].startswith("3.1")


def test_every_documented_error_status_uses_the_error_shape() -> None:
    for item in DOCUMENT["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response == {"$ref": "#/components/responses/Error"}, (method, status)


def test_it_is_served_under_the_prefix_it_is_mounted_at(make_app: Any) -> None:
    for prefix in ("/livekit", "/api/rt"):
        app = make_app(LIVEKIT_ONBOARDING_URL_PREFIX=prefix)
        response = app.test_client().get(f"{prefix}/openapi.json")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        served = response.get_json()
        assert served["servers"] == [{"url": prefix}]
        assert served["paths"] == DOCUMENT["paths"]


def test_it_can_be_switched_off(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_OPENAPI=False)
    response = app.test_client().get("/livekit/openapi.json")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_options_lists_only_the_methods_a_route_serves(app: Flask) -> None:
    client = app.test_client()
    assert client.options("/livekit/token").headers["Allow"] == "OPTIONS, POST"
    allow = client.options("/livekit/rooms/x").headers["Allow"]
    assert allow == "DELETE, GET, HEAD, OPTIONS"
    assert client.options("/livekit/nope").status_code == 404


def test_request_schemas_are_the_ones_the_models_generate() -> None:
    from flask_livekit_onboarding.http.openapi import MODELS, generated_document

    generated = generated_document()
    # After changing a model: python scripts/openapi.py
    assert generated == DOCUMENT
    schemas = DOCUMENT["components"]["schemas"]
    for name in MODELS:
        # A body of several kinds (a report) is one of its kinds' schemas.
        kinds = [ref["$ref"].rpartition("/")[2] for ref in schemas[name].get("oneOf", [])]
        for schema in [schemas[kind] for kind in kinds] or [schemas[name]]:
            assert schema["additionalProperties"] is False, name
