"""Regenerate the request schemas of the package's OpenAPI document from the models.

python scripts/openapi.py
"""

from __future__ import annotations

import json
from pathlib import Path

from flask_livekit_onboarding.http.openapi import OPENAPI, generated_document

PACKAGE = Path(__file__).resolve().parent.parent / "flask_livekit_onboarding"

if __name__ == "__main__":
    text = json.dumps(generated_document(), indent=2, ensure_ascii=False) + "\n"
    (PACKAGE / OPENAPI).write_text(text)
