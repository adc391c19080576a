"""The OpenAPI document: the hand-kept paths and responses, request schemas from the models."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pydantic import BaseModel

from ..invite_request import InviteOptions
from ..reports import ReportBody
from ..token_request import TokenRequestBody
from ..validation import json_schema
from .bodies import ContextUpdateBody

#: The document shipped in the package, next to this package's modules.
OPENAPI = "openapi.json"
#: Component schemas generated from the models that validate the bodies.
MODELS: dict[str, type[BaseModel]] = {
    "TokenRequest": TokenRequestBody,
    "ContextUpdate": ContextUpdateBody,
    "InviteRequest": InviteOptions,
    "Report": ReportBody,
}


def shipped_document() -> dict[str, Any]:
    """The OpenAPI document as the package ships it."""
    text = resources.files("flask_livekit_onboarding").joinpath(OPENAPI).read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def generated_document() -> dict[str, Any]:
    """The shipped document with every model's schema generated afresh."""
    document = shipped_document()
    schemas = document["components"]["schemas"]
    for name, model in MODELS.items():
        schema = json_schema(model)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return document
