"""``watchkeeper api``: Slack interactivity (the page's buttons) and health.

``POST /slack/interactions`` verifies Slack's request signature (``v0`` HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the signing secret), refuses a timestamp older than five
minutes, a signature already seen (a replay) and any mismatch (constant-time compare) with
401 and changes nothing; otherwise it applies the button (acknowledge, resolve, silence,
not actionable) as the Slack user who pressed it, and updates the message to show it.
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
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from alerts.actions import Action
from alerts.store import ActionStore
from services.slack_blocks import acted_message

log = logging.getLogger("watchkeeper.api")
MAX_AGE_SECONDS = 300


def verify_slack_signature(secret: str, timestamp: str | None, body: bytes,
                           signature: str | None, now: float) -> bool:
    """True when ``signature`` is Slack's ``v0`` signature of ``body`` at ``timestamp``,
    no older (or newer) than five minutes.

    >>> sig = "v0=" + hmac.new(b"s", b"v0:100:x", hashlib.sha256).hexdigest()
    >>> verify_slack_signature("s", "100", b"x", sig, now=150.0)
    True
    >>> verify_slack_signature("s", "100", b"x", sig, now=1000.0)  # too old
    False
    """
    if not secret or not timestamp or not signature:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > MAX_AGE_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def build_api(store: ActionStore, signing_secret: str | None, client: WebClient | None, *,
              api_token: str | None = None,
              clock: Callable[[], float] = time.time) -> web.Application:
    """The API app. Slack interactivity needs ``signing_secret``; the HTTP actions
    (``POST /api/alerts/{alert_id}/{action}``) need ``api_token`` as a bearer token."""
    async def interactions(request: web.Request) -> web.Response:
        body = await request.read()
        now = clock()
        signature = request.headers.get("X-Slack-Signature")
        if not signing_secret or not verify_slack_signature(signing_secret,
                                      request.headers.get("X-Slack-Request-Timestamp"),
                                      body, signature, now):
            return web.json_response({"error": "invalid or expired signature"}, status=401)
        assert signature is not None
        # seen by any API process in the window a timestamp is accepted: a replay
        key = hashlib.sha256(signature.encode("utf-8", "replace")).hexdigest()
        first = await asyncio.to_thread(store.first_use, key, datetime.fromtimestamp(
            now, tz=UTC), 2 * MAX_AGE_SECONDS)
        if not first:
            return web.json_response({"error": "replayed request"}, status=401)
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            action = payload["actions"][0]
            action_id, alert_id = action["action_id"], action["value"]
            user = payload["user"]["id"]
        except (KeyError, IndexError, ValueError, UnicodeDecodeError, TypeError):
            return web.json_response({"error": "not a block_actions payload"}, status=400)
        if payload.get("type") != "block_actions" or action_id not in set(Action):
            return web.json_response({"error": "unsupported interaction"}, status=400)
        pressed = Action(action_id)
        at = datetime.fromtimestamp(now, tz=UTC)
        # database and Slack calls are blocking: off the event loop
        result = await asyncio.to_thread(store.act, alert_id, pressed, user, at)
        if result is None:
            return web.json_response({"text": f"no alert {alert_id}"})
        channel = (payload.get("container") or {}).get("channel_id") or (
            payload.get("channel") or {}).get("id")
        ts = (payload.get("container") or {}).get("message_ts") or (
            payload.get("message") or {}).get("ts")
        blocks = (payload.get("message") or {}).get("blocks") or []
        if client is not None and channel and ts:
            try:
                await asyncio.to_thread(
                    client.chat_update, channel=channel, ts=ts, text=f"{pressed.value} by {user}",
                    blocks=acted_message(blocks, pressed, user, at.isoformat()))
            except SlackApiError as exc:  # the action stands; the message lags behind
                log.warning("could not update the Slack message: %s", exc)
        return web.json_response({"ok": True, "status": result.status.value})

    async def http_action(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not api_token or not hmac.compare_digest(given.encode(),
                                                    f"Bearer {api_token}".encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            action = Action.parse(request.match_info["action"])
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        try:
            data = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        actor = str((data or {}).get("by") or "api")
        result = await asyncio.to_thread(
            store.act, request.match_info["alert_id"], action, actor,
            datetime.fromtimestamp(clock(), tz=UTC), note=str((data or {}).get("note") or ""))
        if result is None:
            return web.json_response({"error": "no such alert"}, status=404)
        return web.json_response({"ok": True, "alert_id": result.alert_id,
                                  "status": result.status.value,
                                  "acknowledged_by": result.acknowledged_by})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/slack/interactions", interactions)
    app.router.add_post("/api/alerts/{alert_id}/{action}", http_action)
    app.router.add_get("/healthz", healthz)
    return app
