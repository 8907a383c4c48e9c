"""The web console's access token: made here, or given by the user and checked here (before
the server's libraries load, so a bad one costs a user no wait)."""

from __future__ import annotations

import re
import secrets

SHAPE = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def new() -> str:
    """192 random bits, URL- and cookie-safe."""
    return secrets.token_urlsafe(24)


def problem(token: str) -> str | None:
    """Why a token given by the user cannot be used (None: it can)."""
    if not SHAPE.fullmatch(token):
        return (
            "the token must be 16 to 256 characters of A-Z a-z 0-9 - _ . ~ "
            "(it goes in a URL and a cookie)"
        )
    return None
