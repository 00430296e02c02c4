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

Failed sign-ins are limited per client (its remote address): after
``WATCHKEEPER_CONSOLE_SIGN_IN_FAILURES`` (10) in ``..._SIGN_IN_WINDOW`` seconds (300), sign-ins
from it answer 429 with ``Retry-After`` until the oldest of them is that old
(:class:`FailedSignIns`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import OrderedDict, deque
from urllib.parse import urlsplit

from fastapi import Request

from config.settings import ConsoleSettings


def session_key(settings: ConsoleSettings, api_token: str | None) -> str:
    """The key that signs session cookies.

    >>> session_key(ConsoleSettings(session_secret="s"), "t")
    's'
    >>> session_key(ConsoleSettings(), "t") == session_key(ConsoleSettings(), "t") != "t"
    True
    """
    if settings.session_secret:  # an empty one counts as unset
        return settings.session_secret.get_secret_value()
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


class FailedSignIns:
    """Failed sign-ins per client in a sliding window, in memory, for one process.

    Written here rather than taken from a rate-limiting library: what is needed is a
    bounded count of failures only (a success costs nothing and clears the client), and
    bounded memory: at most ``clients`` clients are remembered (the least recently failed
    is forgotten first), each with at most ``failures`` times.

    >>> limit = FailedSignIns(failures=2, window=60.0)
    >>> limit.failed("a", 0.0), limit.retry_after("a", 1.0)
    (None, None)
    >>> limit.failed("a", 10.0), limit.retry_after("a", 30.0), limit.retry_after("b", 30.0)
    (50, 30, None)
    >>> limit.retry_after("a", 60.0), limit.succeeded("a"), limit.retry_after("a", 61.0)
    (None, None, None)
    >>> few = FailedSignIns(failures=1, window=60.0, clients=2)
    >>> [few.failed(c, 0.0) for c in "abc"], len(few), few.retry_after("a", 1.0)
    ([60, 60, 60], 2, None)
    """

    def __init__(self, failures: int, window: float, clients: int = 10_000) -> None:
        self.failures, self.window, self.clients = failures, window, clients
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str, now: float) -> int | None:
        """Seconds (rounded up) until ``client`` may try again, or None: it may now."""
        times = self._times.get(client)
        if times is None or len(times) < self.failures:
            return None
        wait = self.window - (now - times[0])
        return math.ceil(wait) if wait > 0 else None

    def failed(self, client: str, now: float) -> int | None:
        """Count a failure; :meth:`retry_after` as it is now."""
        times = self._times.pop(client, None) or deque(maxlen=self.failures)
        times.append(now)
        self._times[client] = times  # the most recent last
        while len(self._times) > self.clients:
            self._times.popitem(last=False)
        return self.retry_after(client, now)

    def succeeded(self, client: str) -> None:
        self._times.pop(client, None)

    def __len__(self) -> int:
        return len(self._times)
