"""Session management routes: status, context update and end of an onboarding room."""

from __future__ import annotations

from flask import Blueprint


def register_session_routes(bp: Blueprint) -> None:
    """Add ``/rooms/<room_name>`` (GET, DELETE) and ``/rooms/<room_name>/context`` (PATCH)."""
