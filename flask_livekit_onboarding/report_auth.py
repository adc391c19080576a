"""The credential of a report: a short-lived JWT signed with the deployment's API key and secret.

An agent worker already holds the LiveKit API key and secret, so it signs its reports the way
LiveKit signs webhooks (HS256, issuer = API key, the base64 SHA-256 of the exact body) and the
host verifies them with the same key. Three claims make the credential a report credential
and nothing else: the audience :data:`REPORT_AUDIENCE`, which neither participant tokens nor
webhook signatures carry, and the ``room`` and ``session`` it is bound to.

No Flask import: the agent helper signs with :func:`sign_report`, the host verifies with
:func:`verify_report`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import jwt

#: The audience of a report credential; a token without it is not one.
REPORT_AUDIENCE = "livekit-onboarding:report"
#: Seconds a credential is valid for when the agent helper signs it.
REPORT_TOKEN_TTL = 60
#: Longest lifetime (``exp`` - ``iat``) a credential may claim; longer ones are refused.
MAX_REPORT_TOKEN_TTL = 300
#: Seconds of clock difference tolerated between the agent's host and the app's.
CLOCK_LEEWAY = 10
_ALGORITHM = "HS256"


class ReportCredentialError(Exception):
    """The credential is missing, forged, expired, not a report credential or not this body's."""


@dataclass(frozen=True)
class ReportClaims:
    """What a verified report credential binds the report to."""

    room: str
    session: str


def body_hash(body: bytes) -> str:
    """The base64 SHA-256 of ``body``, as LiveKit's webhook signatures spell it."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign_report(
    api_key: str,
    api_secret: str,
    *,
    room: str,
    session: str,
    body: bytes,
    ttl: int = REPORT_TOKEN_TTL,
    now: float | None = None,
) -> str:
    """The ``Authorization`` header value (``Bearer …``) for posting ``body`` as a report."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": api_key,
        "aud": REPORT_AUDIENCE,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "room": room,
        "session": session,
        "sha256": body_hash(body),
    }
    return "Bearer " + jwt.encode(claims, api_secret, algorithm=_ALGORITHM)


def verify_report(
    api_key: str, api_secret: str, authorization: str | None, body: bytes
) -> ReportClaims:
    """The room and session a valid report credential for ``body`` is bound to.

    Raises :class:`ReportCredentialError` for anything else; its message is safe to show.
    """
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise ReportCredentialError(
            "The Authorization header with the report credential is missing."
        )
    try:
        claims = jwt.decode(
            token,
            api_secret,
            algorithms=[_ALGORITHM],
            audience=REPORT_AUDIENCE,
            issuer=api_key,
            leeway=CLOCK_LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise ReportCredentialError("The report credential has expired.") from None
    except (jwt.MissingRequiredClaimError, jwt.InvalidAudienceError):
        raise ReportCredentialError("This is not a report credential.") from None
    except jwt.PyJWTError:
        raise ReportCredentialError("The report credential is invalid.") from None
    lifetime = _number(claims.get("exp")) - _number(claims.get("iat"))
    if lifetime > MAX_REPORT_TOKEN_TTL:
        raise ReportCredentialError(
            f"The report credential lives longer than {MAX_REPORT_TOKEN_TTL} seconds."
        )
    signed = claims.get("sha256")
    if not isinstance(signed, str) or not hmac.compare_digest(signed, body_hash(body)):
        raise ReportCredentialError("The report body does not match its credential.")
    room, session = claims.get("room"), claims.get("session")
    if not isinstance(room, str) or not room or not isinstance(session, str) or not session:
        raise ReportCredentialError("The report credential names no room and session.")
    return ReportClaims(room, session)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
