"""The HTTP side: the blueprint, its request bodies and its views."""

from __future__ import annotations

from .blueprint import create_blueprint

__all__ = ["create_blueprint"]
