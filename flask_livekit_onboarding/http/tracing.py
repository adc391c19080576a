"""A span around each view of the extension that acts on one room (reports, invites)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..state import get_state
from ..telemetry import ROOM

V = TypeVar("V", bound=Callable[..., Any])


def room_span(name: str) -> Callable[[V], V]:
    """Trace the view as span ``name`` with the room's name; the view keeps its own name."""

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def traced(room_name: str, **kwargs: Any) -> Any:
            with get_state().telemetry.span(name, {ROOM: room_name}):
                return view(room_name, **kwargs)

        return traced  # type: ignore[return-value]

    return decorate
