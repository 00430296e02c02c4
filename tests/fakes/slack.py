"""A local fake of Slack's Web API, for tests: the endpoints Watchkeeper uses, with
real-shaped answers, on 127.0.0.1, and faults to inject.

It keeps what was posted per channel, with each message's metadata, and answers
``conversations.history`` (top-level messages, newest first), ``conversations.replies`` (a
thread, its parent first) and ``conversations.list`` as Slack does: ``oldest``/``latest``
exclusive unless ``inclusive``, ``limit`` and an opaque ``cursor`` with
``response_metadata.next_cursor`` ("" on the last page), metadata only with
``include_all_metadata``. Faults (:class:`Fault`), taken in order by the calls they match:
an error status (429 with ``Retry-After``, 5xx), a slow answer (``delay``), and a call that
lands but answers late (``lands=True``: the message is kept, then the answer waits
``delay`` seconds, past the client's timeout); and, on the fake's ``clock``, an outage
(``down_until``: every call answers ``down_status`` until then)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT = {"user": "U0BOT", "bot_id": "B0WATCH", "app_id": "A0WATCH", "team": "T1"}


@dataclass
class Fault:
    """What the next matching call gets: ``status`` after ``delay`` seconds, or with
    ``lands``, the call done (a message posted) and its answer ``delay`` seconds late.
    ``method`` limits it to one Web API method (None: any)."""

    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0
    lands: bool = False
    method: str | None = None


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    return int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0


def _flag(value: Any) -> bool:
    return str(value).lower() in {"1", "true"}


@dataclass
class FakeSlack:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    # id -> name; every other channel a test needs is added here
    channels: dict[str, str] = field(default_factory=lambda: {"C0PAGES": "ml-oncall"})
    # channel id -> its messages, oldest first (replies included, with thread_ts)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # when set, a message's ts is this clock's time (unique, increasing), as Slack's is;
    # else the fake numbers its messages from the time it was made
    clock: Callable[[], float] | None = None
    # with ``clock``: every call until this time answers ``down_status`` (an outage)
    down_until: float = 0.0
    down_status: int = 500
    url: str = ""  # the base URL, once started
    _ts: int = field(default_factory=lambda: int(time.time()))
    token: str = "xoxb-test"  # the bot token it takes (others get invalid_auth)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                self._serve(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body: dict[str, Any] = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                    for key in ("blocks", "attachments", "metadata"):
                        if isinstance(body.get(key), str):
                            body[key] = json.loads(body[key])
                self._serve(self.path, body)

            def _serve(self, path: str, body: dict[str, Any]) -> None:
                method = path.rsplit("/", 1)[-1]
                if fake.clock is not None and fake.clock() < fake.down_until:
                    self._send(fake.down_status, {"ok": False, "error": "internal_error"})
                    return
                fault = fake.take_fault(method)
                if fault is not None and not fault.lands:
                    time.sleep(fault.delay)
                    self._send(fault.status, {"ok": False, "error": "ratelimited"
                                              if fault.status == 429 else "internal_error"},
                               {"Retry-After": str(fault.retry_after)}
                               if fault.retry_after is not None else {})
                    return
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(200, {"ok": False, "error": "invalid_auth"})
                    return
                answer = fake.handle(method, body)
                if fault is not None:  # it landed; the answer comes after the client left
                    time.sleep(fault.delay)
                self._send(200, answer)

            def _send(self, status: int, data: dict[str, Any],
                      headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went: as with Slack, the call stands

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        return self.url

    def take_fault(self, method: str) -> Fault | None:
        """The first queued fault for ``method`` (removed), if any."""
        with self._lock:
            for fault in self.faults:
                if fault.method in (None, method):
                    self.faults.remove(fault)
                    return fault
        return None

    def channel_id(self, channel: Any) -> str | None:
        """A channel's id from what chat.postMessage was given: an id or a ``#name``."""
        name = str(channel or "").removeprefix("#")
        if name in self.channels:
            return name
        return next((cid for cid, n in self.channels.items() if n == name), None)

    def answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to a call (a chat.postMessage takes the next ts); keeps nothing."""
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"type": "message", **BOT, "text": body.get("text"),
                       "blocks": body.get("blocks"), "ts": ts}
            for key in ("thread_ts", "metadata"):
                if body.get(key):
                    message[key] = body[key]
            return {"ok": True, "channel": self.channel_id(body.get("channel")), "ts": ts,
                    "message": message}
        if method == "chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts"),
                    "text": body.get("text")}
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "team_id": "T1"}
        return {"ok": False, "error": "unknown_method"}

    def handle(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """Serve one authenticated call: record it, keep what it posts, answer."""
        with self._lock:
            self.calls.append((method, body))
            if method == "chat.postMessage":
                channel = self.channel_id(body.get("channel"))
                if channel is None:
                    return {"ok": False, "error": "channel_not_found"}
                answer = self.answer(method, body)
                self.messages.setdefault(channel, []).append(answer["message"])
                return answer
            if method == "conversations.history":
                return self._history(body)
            if method == "conversations.replies":
                return self._replies(body)
            if method == "conversations.list":
                return self._list(body)
            return self.answer(method, body)

    def posted(self, channel: str = "C0PAGES") -> list[dict[str, Any]]:
        """What a channel holds, oldest first (thread replies included)."""
        with self._lock:
            return list(self.messages.get(channel, []))

    def _next_ts(self) -> str:
        if self.clock is None:
            self._ts += 1
            return f"{self._ts}.000100"
        self._last = max(self.clock(), self._last + 1e-6)
        return f"{self._last:.6f}"

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        top = [m for m in self.messages.get(channel, []) if m.get("thread_ts", m["ts"]) == m["ts"]]
        return self._page(list(reversed(top)), body, 100, "messages")

    def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        held = self.messages.get(channel, [])
        parent = [m for m in held if m["ts"] == ts and m.get("thread_ts", ts) == ts]
        if not parent:
            return {"ok": False, "error": "thread_not_found"}
        thread = [m for m in held if m.get("thread_ts") == ts and m["ts"] != ts]
        page = self._page(thread, body, 1000, "messages")
        if page["ok"] and not body.get("cursor"):  # the parent comes first
            page["messages"].insert(0, self._shown(parent[0], body))
        return page

    def _list(self, body: dict[str, Any]) -> dict[str, Any]:
        channels = [{"id": cid, "name": name, "name_normalized": name, "is_channel": True,
                     "is_group": False, "is_im": False, "is_private": False,
                     "is_archived": False, "is_member": True}
                    for cid, name in self.channels.items()]
        start, limit = _offset(body.get("cursor")), int(body.get("limit") or 100)
        more = start + limit < len(channels)
        return {"ok": True, "channels": channels[start:start + limit],
                "response_metadata": {"next_cursor": _cursor(start + limit) if more else ""}}

    def _page(self, messages: list[dict[str, Any]], body: dict[str, Any], default: int,
              key: str) -> dict[str, Any]:
        inclusive = _flag(body.get("inclusive"))
        oldest, latest = float(body.get("oldest") or 0), float(body.get("latest") or "inf")
        kept = [m for m in messages
                if (oldest <= float(m["ts"]) if inclusive else oldest < float(m["ts"]))
                and (float(m["ts"]) <= latest if inclusive else float(m["ts"]) < latest)]
        start, limit = _offset(body.get("cursor")), min(int(body.get("limit") or default), 999)
        more = start + limit < len(kept)
        return {"ok": True, key: [self._shown(m, body) for m in kept[start:start + limit]],
                "has_more": more,
                "response_metadata": {"next_cursor": _cursor(start + limit) if more else ""}}

    @staticmethod
    def _shown(message: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        if _flag(body.get("include_all_metadata")):
            return dict(message)
        return {k: v for k, v in message.items() if k != "metadata"}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
