"""``watchkeeper api``: Slack interactivity (the page's buttons), the HTTP actions, the web
console (:mod:`services.console`), ``/metrics``, ``/healthz`` and ``/readyz``, on FastAPI.

``POST /slack/interactions`` checks Slack's request signature with slack_sdk's
:class:`~slack_sdk.signature.SignatureVerifier` (``v0`` HMAC-SHA256 of
``v0:{timestamp}:{body}``, timestamps within five minutes, constant-time compare) and
refuses a signature already taken by any API process on this database (a replay,
:meth:`~alerts.store.ActionStore.first_use`) with 401, changing nothing; otherwise it applies
the button (acknowledge, resolve, silence, not actionable) as the Slack user who pressed it
and updates the message to show it. ``POST /api/alerts/{alert_id}/{action}`` does the same
for a caller with the API token as a bearer token.

Every response carries the security headers of :data:`SECURITY_HEADERS` (no inline script
anywhere: the console's JavaScript is served as files) and no ``Server`` header.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.actions import Action
from alerts.store import ActionStore, HistoryStore
from config.errors import RetryableError
from config.settings import ConsoleSettings
from services.console import console_app
from services.slack_blocks import acted_message

log = logging.getLogger("watchkeeper.api")
MAX_AGE_SECONDS = 300  # Slack's window for a request's timestamp (SignatureVerifier's too)

# A strict policy: scripts, styles, images and fetches from this origin only, no inline
# script or style, no plugins, never framed, forms post back here only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class ApiStore(ActionStore, HistoryStore, Protocol):
    """What the api uses of the store: people's actions and the history."""


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every response (errors included), and
    no ``Server`` header whoever set it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"server" and k.lower() not in names]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Metrics:
    """The api's Prometheus metrics (``/metrics``), in a registry of the app's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter("watchkeeper_api_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=registry)
        self.seconds = Histogram("watchkeeper_api_request_seconds",
                                 "time to answer an HTTP request", ["route"],
                                 registry=registry)
        self.actions = Counter("watchkeeper_api_actions", "people's actions on alerts, by "
                               "action and where they came from (slack, http, console)",
                               ["action", "via"], registry=registry)
        self.refused = Counter("watchkeeper_api_slack_refused",
                               "Slack requests refused, by reason", ["reason"],
                               registry=registry)
        self.logins = Counter("watchkeeper_console_logins", "console sign-ins, by outcome",
                              ["outcome"], registry=registry)


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by its route's template
    (``/alerts/{alert_id}``, not each id: bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is None:
                route = "/static" if scope["path"].startswith("/static/") else "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)


class _Clock(Clock):
    """slack_sdk's clock on the api's own (tests set the time)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def build_api(store: ApiStore, signing_secret: str | None, client: WebClient | None, *,
              api_token: str | None = None, console: ConsoleSettings | None = None,
              clock: Callable[[], float] = time.time) -> FastAPI:
    """The API app. Slack interactivity needs ``signing_secret``; the HTTP actions
    (``POST /api/alerts/{alert_id}/{action}``) need ``api_token`` as a bearer token; the
    console signs in with the same token, or trusts the proxy header ``console`` names."""
    metrics = Metrics(CollectorRegistry())  # the app's own: several apps in a process
    refused = metrics.refused
    verifier = SignatureVerifier(signing_secret, _Clock(clock)) if signing_secret else None
    app = FastAPI(title="Watchkeeper", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RetryableError)
    async def database_away(_: Request, exc: RetryableError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=503)

    def signed(body: bytes, timestamp: str | None, signature: str | None) -> bool:
        if verifier is None:
            return False
        try:
            return verifier.is_valid(body, timestamp, signature)
        except (ValueError, TypeError):  # a timestamp not a number, a signature not ASCII
            return False

    @app.post("/slack/interactions")
    async def interactions(request: Request) -> Response:
        body = await request.body()
        now = clock()
        signature = request.headers.get("X-Slack-Signature")
        if not signed(body, request.headers.get("X-Slack-Request-Timestamp"), signature):
            refused.labels("signature").inc()
            return JSONResponse({"error": "invalid or expired signature"}, status_code=401)
        assert signature is not None
        # seen by any API process in the window a timestamp is accepted: a replay
        key = hashlib.sha256(signature.encode("utf-8", "replace")).hexdigest()
        first = await asyncio.to_thread(store.first_use, key, datetime.fromtimestamp(
            now, tz=UTC), 2 * MAX_AGE_SECONDS)
        if not first:
            refused.labels("replay").inc()
            return JSONResponse({"error": "replayed request"}, status_code=401)
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            action = payload["actions"][0]
            action_id, alert_id = action["action_id"], action["value"]
            user = payload["user"]["id"]
        except (KeyError, IndexError, ValueError, UnicodeDecodeError, TypeError):
            refused.labels("payload").inc()
            return JSONResponse({"error": "not a block_actions payload"}, status_code=400)
        if payload.get("type") != "block_actions" or action_id not in set(Action):
            refused.labels("payload").inc()
            return JSONResponse({"error": "unsupported interaction"}, status_code=400)
        pressed = Action(action_id)
        at = datetime.fromtimestamp(now, tz=UTC)
        # database and Slack calls are blocking: off the event loop
        result = await asyncio.to_thread(store.act, alert_id, pressed, user, at)
        if result is None:
            return JSONResponse({"text": f"no alert {alert_id}"})
        metrics.actions.labels(pressed.value, "slack").inc()
        await asyncio.to_thread(update_message, payload, pressed, user, at)
        return JSONResponse({"ok": True, "status": result.status.value})

    def update_message(payload: dict[str, Any], pressed: Action, user: str,
                       at: datetime) -> None:
        container = payload.get("container") or {}
        channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
        ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
        blocks = (payload.get("message") or {}).get("blocks") or []
        if client is None or not channel or not ts:
            return
        try:
            client.chat_update(channel=channel, ts=ts, text=f"{pressed.value} by {user}",
                               blocks=acted_message(blocks, pressed, user, at.isoformat()))
        except SlackApiError as exc:  # the action stands; the message lags behind
            log.warning("could not update the Slack message: %s", exc)

    @app.post("/api/alerts/{alert_id}/{action}")
    async def http_action(alert_id: str, action: str, request: Request) -> Response:
        given = request.headers.get("Authorization", "")
        if not api_token or not hmac.compare_digest(given.encode(),
                                                    f"Bearer {api_token}".encode()):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        try:
            chosen = Action.parse(action)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(data, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        actor = str(data.get("by") or "api")
        result = await asyncio.to_thread(
            store.act, alert_id, chosen, actor, datetime.fromtimestamp(clock(), tz=UTC),
            note=str(data.get("note") or ""))
        if result is None:
            return JSONResponse({"error": "no such alert"}, status_code=404)
        metrics.actions.labels(chosen.value, "http").inc()
        return JSONResponse({"ok": True, "alert_id": result.alert_id,
                             "status": result.status.value,
                             "acknowledged_by": result.acknowledged_by})

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz")
    async def readyz() -> Response:
        try:
            await asyncio.to_thread(store.ping)
        except RetryableError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)
        return JSONResponse({"ok": True})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.mount("/", console_app(store, console or ConsoleSettings(), api_token=api_token,
                               actions=metrics.actions, logins=metrics.logins, clock=clock))
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    return app
