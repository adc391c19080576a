"""``POST {prefix}/webhook``: verified LiveKit webhooks turned into signals."""

from __future__ import annotations

from flask import Response


def receive_webhook() -> tuple[Response, int]:
    """Verify a LiveKit webhook and emit the matching signals once."""
    raise NotImplementedError
