"""Security fixtures: secrets made up for each run, the api over real HTTP and every table
dumped.

The api is started with the project's own entry point (``watchkeeper api`` in a
subprocess, on a free port from scripts/free_port.py) and spoken to with http.client, so
these tests hold whatever framework serves it.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import create_engine, inspect, text

from alerts.store.schema import database_url
from alerts.store.sql import SqlStore
from config.settings import SlackSettings
from services.notifier import Notifier, slack_client
from sim.scenarios import generate, write_scenario
from tests.fakes.slack import FakeSlack
from tests.ports import free_port
from watchkeeper.cli import run_replay

ROOT = Path(__file__).resolve().parents[2]
# the CLI with every logger at DEBUG on stderr: what an operator's log would hold at most
DEBUG_CLI = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); "
             "from watchkeeper.cli import main; sys.exit(main(sys.argv[1:]))")
START_SECONDS = 60.0  # bound on the api answering /healthz


@dataclass(frozen=True)
class Secrets:
    """Strong, fresh secrets (hex: never mistaken for a placeholder), so a test that finds
    one in a log found a leak, not a coincidence."""

    bot_token: str = field(default_factory=lambda: (
        f"xoxb-{secrets.randbelow(10**12):012d}-{secrets.randbelow(10**12):012d}-"
        f"{secrets.token_hex(12)}"))
    signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    api_token: str = field(default_factory=lambda: secrets.token_hex(24))
    session_secret: str = field(default_factory=lambda: secrets.token_hex(24))

    def env(self, slack_url: str) -> dict[str, str]:
        return {"WATCHKEEPER_SLACK_BOT_TOKEN": self.bot_token,
                "WATCHKEEPER_SLACK_SIGNING_SECRET": self.signing_secret,
                "WATCHKEEPER_API_TOKEN": self.api_token,
                "WATCHKEEPER_CONSOLE_SESSION_SECRET": self.session_secret,
                "WATCHKEEPER_SLACK_API_URL": slack_url}

    def all(self) -> dict[str, str]:
        return {"bot token": self.bot_token, "signing secret": self.signing_secret,
                "api token": self.api_token, "console session secret": self.session_secret}


def clean_environ() -> dict[str, str]:
    """This process's environment without Watchkeeper's settings (the developer's shell may
    have some), the checkout first on the import path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WATCHKEEPER_") or k == "WATCHKEEPER_REQUIRE_SERVICES"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ApiServer:
    """``watchkeeper api`` on a free port, every logger at DEBUG into ``log``."""

    def __init__(self, db: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self._argv = [sys.executable, "-c", DEBUG_CLI, "api", "--db", db,
                      "--host", "127.0.0.1", "--port", str(self.port)]
        self._env = {**clean_environ(), **env}

    def __enter__(self) -> ApiServer:
        self._log_fh = self.log.open("wb")
        self.proc = subprocess.Popen(self._argv, env=self._env, cwd=self.log.parent,
                                     stdout=self._log_fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the api exited ({self.proc.returncode}):\n"
                                     + self.log.read_text(errors="replace"))
            try:
                if self.request("GET", "/healthz").status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError("the api did not answer /healthz:\n"
                                     + self.log.read_text(errors="replace"))
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                            resp.read())
        finally:
            conn.close()

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self._log_fh.close()


Dump = dict[str, list[tuple[Any, ...]]]


def dump(db: str) -> Dump:
    """Every table and view of the database, every row (in a stable order)."""
    engine = create_engine(database_url(db))
    try:
        names = inspect(engine).get_table_names() + inspect(engine).get_view_names()
        with engine.connect() as conn:
            return {name: sorted((tuple(r) for r in conn.execute(text(f'SELECT * FROM "{name}"'))),
                                 key=repr)
                    for name in sorted(names)}
    finally:
        engine.dispose()


def slack_signed(secret: str, body: bytes, ts: int | str) -> dict[str, str]:
    """Slack's request headers for ``body`` sent at ``ts``, signed with ``secret``."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded"}


def block_action(alert_id: str, action: str, channel: str, ts: str,
                 user: str = "U0ONCALL") -> bytes:
    """The body Slack posts when ``user`` presses ``action`` on the page in ``channel``."""
    payload = {"type": "block_actions", "user": {"id": user},
               "actions": [{"action_id": action, "value": alert_id}],
               "container": {"channel_id": channel, "message_ts": ts},
               "message": {"ts": ts, "blocks": []}}
    return urlencode({"payload": json.dumps(payload)}).encode()


@dataclass(frozen=True)
class Paged:
    """A database in which a page went out to (fake) Slack, and where."""

    db: str
    alert_id: str
    channel: str
    ts: str


def replay_and_deliver(db: str, workdir: Path, made_up: Secrets, slack_url: str) -> Paged:
    """A broken-pipeline replay with paging on, its page delivered to Slack."""
    files = write_scenario(generate("broken_pipeline", predictions=3_000, seed=7),
                           workdir / "bp.jsonl")
    run_replay(files.events, files.config, db=db, quiet=True, dry_run=False,
               out=io.StringIO(), rejects_out=workdir / "rejects.jsonl")
    settings = SlackSettings(bot_token=SecretStr(made_up.bot_token), api_url=slack_url)
    store = SqlStore(db, migrate=False)
    try:
        report = Notifier(store, slack_client(settings), settings,
                          sleep=lambda _: None).deliver_pending()
        assert report.sent >= 1 and report.failed == 0  # the page (and thread replies)
    finally:
        store.close()
    return posted_page(db)


def posted_page(db: str) -> Paged:
    """The database's one page that is in Slack: its alert, channel and message ts."""
    engine = create_engine(database_url(db))
    try:
        with engine.connect() as conn:
            alert_id, channel, ts = conn.execute(text(
                "SELECT p.alert_id, l.slack_channel, l.slack_ts FROM pages p "
                "JOIN page_log l ON l.page_id = p.page_id WHERE l.slack_ts IS NOT NULL")).one()
    finally:
        engine.dispose()
    return Paged(db, str(alert_id), str(channel), str(ts))


@pytest.fixture(scope="module")
def made_up() -> Secrets:
    return Secrets()


@pytest.fixture(scope="module")
def fake_slack(made_up: Secrets) -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack(token=made_up.bot_token)
    url = fake.start()
    yield fake, url
    fake.stop()


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory, made_up: Secrets,
          fake_slack: tuple[FakeSlack, str]) -> Paged:
    workdir = tmp_path_factory.mktemp("paged")
    return replay_and_deliver(f"sqlite:///{workdir / 'wk.db'}", workdir, made_up,
                              fake_slack[1])


@pytest.fixture(scope="module")
def api(paged: Paged, made_up: Secrets, fake_slack: tuple[FakeSlack, str],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The api on the paged database, with strong secrets (production: the default)."""
    log = tmp_path_factory.mktemp("api") / "api.log"
    with ApiServer(paged.db, made_up.env(fake_slack[1]), log) as server:
        yield server
