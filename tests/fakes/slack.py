"""A local fake of Slack's Web API, for tests: the endpoints Watchkeeper uses, with
real-shaped answers, on 127.0.0.1, and faults to inject (429 with Retry-After, 5xx,
slow answers)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Fault:
    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0


@dataclass
class FakeSlack:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    _ts: int = 1_700_000_000

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body: dict[str, Any] = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                    for key in ("blocks", "attachments"):
                        if isinstance(body.get(key), str):
                            body[key] = json.loads(body[key])
                method = self.path.rsplit("/", 1)[-1]
                if fake.faults:
                    fault = fake.faults.popleft()
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.status != 200:
                        self._send(fault.status, {"ok": False, "error": "ratelimited"
                                                  if fault.status == 429 else "internal_error"},
                                   {"Retry-After": str(fault.retry_after)}
                                   if fault.retry_after is not None else {})
                        return
                if self.headers.get("Authorization") != "Bearer xoxb-test":
                    self._send(200, {"ok": False, "error": "invalid_auth"})
                    return
                fake.calls.append((method, body))
                self._send(200, fake.answer(method, body))

            def _send(self, status: int, data: dict[str, Any],
                      headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            self._ts += 1
            channel = "C0PAGES" if str(body.get("channel", "")).startswith("#") else body.get(
                "channel")
            return {"ok": True, "channel": channel, "ts": f"{self._ts}.000100",
                    "message": {"type": "message", "text": body.get("text"),
                                "blocks": body.get("blocks"), "ts": f"{self._ts}.000100"}}
        if method == "chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts"),
                    "text": body.get("text")}
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "team_id": "T1"}
        return {"ok": False, "error": "unknown_method"}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
