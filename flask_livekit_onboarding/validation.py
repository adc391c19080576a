"""Request bodies as pydantic models: LiveKit's checks as validators, 422s naming the field.

The models are the one description of each body: they validate it, and the OpenAPI
document's request schemas are generated from them (:func:`json_schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationInfo
from pydantic import ValidationError as PydanticError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from .errors import ValidationFailed

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def checked(
    check: Callable[[Any, str], T], key: str | None = None, *, none: bool = True
) -> BeforeValidator:
    """A validator running ``check``; its 422 message and field travel along.

    ``key`` names the value in messages (by default the field's name); ``none``: a JSON
    ``null`` counts as not sent, else it is checked like any other value.
    """

    def validate(value: Any, info: ValidationInfo) -> T | None:
        if value is None and none:
            return None
        try:
            return check(value, key or info.field_name or "")
        except ValidationFailed as error:
            raise problem(error.description, error.field) from None

    return BeforeValidator(validate)


def problem(message: str, field: str | None) -> PydanticCustomError:
    """A pydantic error that :func:`validated` turns into exactly this 422."""
    return PydanticCustomError("livekit_limit", "{message}", {"message": message, "field": field})


def validated(
    model: type[M],
    body: Mapping[str, Any],
    *,
    unknown: str = "Unknown field {!r}.",
    context: Mapping[str, Any] | None = None,
) -> M:
    """``body`` as ``model``, or a 422 naming the field as the error bodies always have.

    ``unknown`` words the refusal of a field the model does not know (named first);
    ``context`` reaches the validators (``info.context``): what the deployment decides.
    """
    try:
        return model.model_validate(body, context=context)
    except PydanticError as failure:
        raise _first_problem(failure, unknown) from None


def _first_problem(failure: PydanticError, unknown_field: str) -> ValidationFailed:
    errors = failure.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return ValidationFailed(unknown_field.format(unknown[0]), field=unknown[0])
    error = errors[0]
    context = error.get("ctx") or {}
    if "message" in context:
        return ValidationFailed(str(context["message"]), field=context.get("field"))
    where = location(error["loc"])
    return ValidationFailed(f"{where} is invalid: {error['msg']}.", field=where or None)


def location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the error bodies name fields: ``a.b[0].c``."""
    text = ""
    for part in loc:
        text = f"{text}[{part}]" if isinstance(part, int) else f"{text}.{part}".lstrip(".")
    return text


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema as the OpenAPI document has it: no titles, no null defaults.

    Models it refers to are in ``$defs``, referred to as OpenAPI components.
    """
    generated = model.model_json_schema(
        ref_template="#/components/schemas/{model}", schema_generator=_OpenAPISchema
    )
    schema: dict[str, Any] = _tidy(generated)
    return schema


class _OpenAPISchema(GenerateJsonSchema):
    """A default the model validates only words the refusal of a missing field (a report's
    id): in the schema, such a field is required and has no default."""

    def field_is_required(self, field: Any, total: bool) -> bool:
        return super().field_is_required(field, total) or _validated_default(field["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if _validated_default(schema):
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def _validated_default(schema: Any) -> bool:
    return bool(schema["type"] == "default" and schema.get("validate_default"))


def _tidy(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_tidy(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tidy = {key: _tidy(value) for key, value in schema.items() if key != "title"}
    if "default" in tidy and tidy["default"] is None:
        del tidy["default"]
    if isinstance(tidy.get("const"), str):
        # As pydantic writes a one-string Literal from 2.7 on; 2.6 leaves the type out.
        tidy.setdefault("type", "string")
    if isinstance(schema.get("properties"), dict):
        tidy["properties"] = {name: _tidy(value) for name, value in schema["properties"].items()}
    return tidy
