"""Working with the host's CSRF protection (Flask-WTF's ``CSRFProtect``).

Given the host's protector, the extension takes its own routes out of the app-wide check and
checks them itself, only where a forged request could ride on a browser's cookies: the webhook
(verified by LiveKit's signature), the routes that only answer 404 or 405, and requests that
carry their credential explicitly (``Authorization: Bearer``) or no cookie at all are not
checked.
"""

from __future__ import annotations

from typing import Any, Protocol

from flask import Request


class CSRFProtector(Protocol):
    """What the extension uses of Flask-WTF's ``CSRFProtect``."""

    def exempt(self, view: Any) -> Any:
        """Leave ``view`` (a view function or a blueprint) out of the app-wide check."""

    def protect(self) -> None:
        """Check the current request's CSRF token; raise a 400 when it is missing or wrong."""


def carries_ambient_credentials(request: Request) -> bool:
    """Whether a cross-site page could have made the browser send ``request`` as its user.

    Browsers attach cookies on their own, so a request with cookies needs the CSRF token. A
    bearer token is never attached by the browser: a page has to set the header, which across
    origins needs a CORS preflight the host's policy answers.
    """
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return False
    return "Cookie" in request.headers
