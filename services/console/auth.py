"""Who uses the console, and that a form was posted by the console's own page.

Two ways in, as for the HTTP API: sign in with the API token (``WATCHKEEPER_API_TOKEN``)
and a name, which makes a session cookie (signed by Starlette's ``SessionMiddleware`` with
itsdangerous, HttpOnly, SameSite=Lax, expiring after ``session_hours``); or, behind a
reverse proxy that authenticates people, the header it sets
(``WATCHKEEPER_CONSOLE_USER_HEADER``, e.g. ``X-Forwarded-User``). The name is what the
alert's history records as who acted.

Every form that changes something carries the session's CSRF token (a synchronizer token,
compared in constant time) and is refused when the browser says it came from another site
(``Origin`` or ``Sec-Fetch-Site``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    """The console's sign-in (``WATCHKEEPER_CONSOLE_*``)."""

    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_CONSOLE_", extra="ignore")

    user_header: str | None = Field(
        default=None, description="a header a trusted reverse proxy sets to the signed-in "
                                  "person's name (X-Forwarded-User, say). Set it only when "
                                  "the api is reachable through that proxy alone")
    session_secret: str | None = Field(
        default=None, description="signs session cookies (default: derived from "
                                  "WATCHKEEPER_API_TOKEN, so changing the token signs "
                                  "everyone out; without either, a secret per process)")
    session_hours: float = Field(default=12.0, gt=0, description="a sign-in lasts this long")
    secure_cookies: bool = Field(default=False,
                                 description="send the session cookie over HTTPS only (set "
                                             "it when the console is served over HTTPS)")


def session_key(settings: ConsoleSettings, api_token: str | None) -> str:
    """The key that signs session cookies.

    >>> session_key(ConsoleSettings(session_secret="s"), "t")
    's'
    >>> session_key(ConsoleSettings(), "t") == session_key(ConsoleSettings(), "t") != "t"
    True
    """
    if settings.session_secret:
        return settings.session_secret
    if api_token:
        return hmac.new(api_token.encode(), b"watchkeeper console session",
                        hashlib.sha256).hexdigest()
    return secrets.token_hex(32)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect).

    >>> safe_next("/alerts/abc?x=1"), safe_next("//evil.example/"), safe_next("https://x/")
    ('/alerts/abc?x=1', '/', '/')
    >>> safe_next("/\\\\evil.example")
    '/'
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


class Auth:
    """Sign-in state and CSRF checks for one console app."""

    def __init__(self, settings: ConsoleSettings, api_token: str | None) -> None:
        self.settings = settings
        self.api_token = api_token

    @property
    def can_sign_in(self) -> bool:
        return bool(self.api_token)

    def user(self, request: Request) -> str | None:
        """Who is signed in: the proxy's header, else the session's name."""
        if self.settings.user_header:
            given = request.headers.get(self.settings.user_header, "").strip()
            if given:
                return given[:200]
        name = request.session.get("user")
        return str(name) if name and self.api_token else None

    def token_matches(self, given: str) -> bool:
        return bool(self.api_token) and hmac.compare_digest(
            given.encode(), (self.api_token or "").encode())

    @staticmethod
    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    @staticmethod
    def same_origin(request: Request) -> bool:
        """The browser did not say the request came from another site."""
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin",
                                                                         "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc == request.headers.get("host", "")

    def csrf_ok(self, request: Request, given: object) -> bool:
        expected = request.session.get("csrf")
        return (self.same_origin(request) and isinstance(given, str)
                and isinstance(expected, str)
                and hmac.compare_digest(given.encode(), expected.encode()))

    @staticmethod
    def sign_in(request: Request, name: str) -> None:
        """A fresh session for ``name`` (a new CSRF token: nothing carries over)."""
        request.session.clear()
        request.session["user"] = name
        request.session["csrf"] = secrets.token_urlsafe(32)

    @staticmethod
    def sign_out(request: Request) -> None:
        request.session.clear()
