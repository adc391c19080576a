"""Reading what the extension stored in a room's metadata, for assertions."""

from __future__ import annotations

import json
from typing import Any

from flask_livekit_onboarding.envelope import METADATA_KEY


def decode_metadata(metadata: str | None) -> dict[str, Any] | None:
    """The raw envelope record in ``metadata`` (unverified), or None when there is none."""
    try:
        document = json.loads(metadata or "")
    except ValueError:
        return None
    record = document.get(METADATA_KEY) if isinstance(document, dict) else None
    return record if isinstance(record, dict) else None
