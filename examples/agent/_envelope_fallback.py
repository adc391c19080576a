"""Temporary reader of today's room metadata until flask_livekit_onboarding.envelope lands."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Envelope:
    version: int
    session_id: str
    owner: str
    context: dict[str, Any]
    client: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0

    @classmethod
    def from_metadata(cls, text: str) -> Envelope | None:
        try:
            record = json.loads(text or "{}").get("onboarding")
        except (ValueError, AttributeError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("owner"), str):
            return None
        return cls(
            version=int(record.get("v", 1)),
            session_id=str(record.get("session_id", "")),
            owner=record["owner"],
            context=dict(record.get("context") or {}),
            client=dict(record.get("client") or {}),
            created_at=int(record.get("created_at", 0)),
        )


def client_metadata(job_metadata: str) -> str | None:
    try:
        value = json.loads(job_metadata or "{}").get("client_metadata")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
