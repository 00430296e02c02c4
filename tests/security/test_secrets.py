"""Secrets stay secret: a full run with every logger at DEBUG (migrations, a replay that
pages, the notifier against fake Slack through a refusal and a 500, the api taking signed
and unsigned presses and right and wrong tokens, commands given a database that is down
or a URL that is malformed) never writes the bot token, the signing secret, the API token
or a database password into a log line, an output or error line, an exception or the
``repr`` of the settings. And outside development a server command refuses placeholder
and short secrets with one line naming the variable."""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from alerts.store.schema import database_url, migrate
from alerts.store.sql import open_store
from config.errors import RetryableError
from config.settings import Settings, load_settings
from sim.scenarios import generate, write_scenario
from tests.fakes.slack import FakeSlack, Fault
from tests.integration.conftest import postgres_url  # noqa: F401 - fixture
from tests.ports import free_port
from tests.security.conftest import (
    ApiServer,
    Paged,
    Secrets,
    block_action,
    posted_page,
    slack_signed,
)
from watchkeeper.cli import main


@pytest.fixture
def pg_with_password(postgres_url: str) -> Iterator[tuple[str, str]]:  # noqa: F811
    """A database owned by a new role with a password; its URL (with the password) and the
    password. (The test server trusts local connections, so the password is not checked,
    but every command carries it in the URL.)"""
    name = f"wk_sec_{uuid.uuid4().hex[:10]}"
    password = secrets.token_hex(16)
    admin = create_engine(database_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    url = make_url(postgres_url).set(drivername="postgresql", username=name,
                                     password=password, database=name)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def failure_texts(dead: str, malformed: list[str]) -> list[str]:
    """What the store and the settings say of a database that is down or a URL that is
    malformed: their exceptions' messages, reprs and tracebacks."""
    out = []
    for attempt in (lambda: open_store(dead), lambda: open_store(dead, migrate=False),
                    lambda: migrate(database_url(dead), "upgrade", "head")):
        with pytest.raises(RetryableError) as info:
            attempt()
        out += [str(info.value), repr(info.value), *traceback.format_exception(info.value)]
    for url in malformed:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("WATCHKEEPER_DATABASE_URL", url)
            with pytest.raises(ValueError) as bad:
                load_settings()
        out += [str(bad.value), repr(bad.value), *traceback.format_exception(bad.value)]
    return out


@pytest.mark.integration
def test_no_secret_in_any_log_output_error_or_repr_of_a_full_run(
    pg_with_password: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    db, db_password = pg_with_password
    made_up = Secrets()
    down_password = secrets.token_hex(16)
    dead = f"postgresql://wk:{down_password}@127.0.0.1:{free_port()}/wk"
    malformed = [f"mysql://root:{down_password}@db/wk",
                 f"postgresql://wk:{down_password}@db:port/wk",
                 f"postgresql://wk:{down_password}@x@db/wk"]
    fake = FakeSlack(token=made_up.bot_token)
    slack_url = fake.start()
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATCHKEEPER_ENV", raising=False)  # production
    for key, value in {**made_up.env(slack_url), "WATCHKEEPER_DATABASE_URL": db}.items():
        monkeypatch.setenv(key, value)
    texts: list[str] = []
    try:
        files = write_scenario(generate("broken_pipeline", predictions=3_000, seed=7),
                               tmp_path / "bp.jsonl")
        assert main(["db", "upgrade"]) == 0
        assert main(["replay", str(files.events), "--config", str(files.config),
                     "--report", "report.json", "-q"]) == 0
        texts.append(Path("report.json").read_text(encoding="utf-8"))
        fake.token = "xoxb-" + secrets.token_hex(20)  # Slack refuses the bot token
        assert main(["notify", "--once"]) == 1
        fake.token = made_up.bot_token
        fake.faults.append(Fault(500))  # then answers 500 once
        assert main(["notify", "--once"]) == 0
        texts += [json.dumps(fake.calls)]
        texts += api_session(posted_page(db), made_up, slack_url, tmp_path)
        for argv in (["alerts", "list"], ["db", "upgrade"], ["notify", "--once"], ["api"],
                     ["worker", "--config", str(files.config)],
                     ["replay", str(files.events), "--config", str(files.config), "-q"]):
            assert main([*argv, "--db", dead]) == 1, argv
        for url in malformed:
            assert main(["alerts", "list", "--db", url]) == 2
            monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", url)
            assert main(["alerts", "list"]) == 2
        monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", db)
        texts += failure_texts(dead, malformed)
        settings = load_settings()
        texts += [repr(settings), str(settings.slack), str(settings.common),
                  repr(settings.worker), settings.slack.model_dump_json(),
                  repr(Settings(settings.common, settings.slack, settings.worker))]
    finally:
        fake.stop()
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    # the run did log at DEBUG, through the failures, and said where the database is
    assert any(r.levelno == logging.DEBUG and r.name.startswith("slack_sdk")
               for r in caplog.records)
    assert any(r.name == "watchkeeper.notifier" and r.levelno == logging.WARNING
               for r in caplog.records)
    kept = {**made_up.all(), "database password": db_password,
            "password of the database that is down": down_password}
    assert [name for name, value in kept.items() if any(value in t for t in texts)] == []
    assert f"{make_url(db).username}:***@" in out and "wk:***@" in err


def api_session(page: Paged, made_up: Secrets, slack_url: str, tmp_path: Path) -> list[str]:
    """The api (every logger at DEBUG) taking good and bad presses and tokens: its log and
    its answers."""
    answers = []
    with ApiServer(page.db, made_up.env(slack_url), tmp_path / "api.log") as api:
        body = block_action(page.alert_id, "acknowledge", page.channel, page.ts)
        now = int(time.time())
        for headers in (slack_signed("0" * 32, body, now), {},
                        slack_signed(made_up.signing_secret, body, now - 600),
                        slack_signed(made_up.signing_secret, body, now)):
            answers.append(api.request("POST", "/slack/interactions", body, headers))
        for token in ("0" * 48, made_up.api_token[:-1], made_up.api_token):
            answers.append(api.request("POST", f"/api/alerts/{page.alert_id}/resolve",
                                       b'{"by": "alice"}',
                                       {"Authorization": f"Bearer {token}",
                                        "Content-Type": "application/json"}))
        answers += [api.request("GET", "/healthz"), api.request("GET", "/")]
    assert [a.status for a in answers[:7]] == [401, 401, 401, 200, 401, 401, 200]
    text_ = api.log_text()
    assert "DEBUG:" in text_  # its loggers were at DEBUG
    return [text_, *(repr(a.headers) + a.body.decode(errors="replace") for a in answers)]


@pytest.mark.parametrize(("argv", "env", "line"), [
    (["api"], {"WATCHKEEPER_SLACK_SIGNING_SECRET": "changeme"},
     "WATCHKEEPER_SLACK_SIGNING_SECRET is a placeholder"),
    (["api"], {"WATCHKEEPER_API_TOKEN": "s3cret-token"},
     "WATCHKEEPER_API_TOKEN is shorter than 16 characters"),
    (["api"], {"WATCHKEEPER_API_TOKEN": "8f742231b10e8888abcd99",
               "WATCHKEEPER_SLACK_BOT_TOKEN": "xoxb-test"},
     "WATCHKEEPER_SLACK_BOT_TOKEN is a placeholder"),
    (["notify", "--once"], {"WATCHKEEPER_SLACK_BOT_TOKEN": "xoxb-your-token"},
     "WATCHKEEPER_SLACK_BOT_TOKEN is a placeholder"),
    (["notify", "--once"], {"WATCHKEEPER_SLACK_BOT_TOKEN": "xoxb-xxxxxxxx-xxxxxxxxxxxxxxxx"},
     "WATCHKEEPER_SLACK_BOT_TOKEN is a placeholder"),
    (["worker", "--config", "c.yaml"], {"WATCHKEEPER_SLACK_BOT_TOKEN": "   "},
     "WATCHKEEPER_SLACK_BOT_TOKEN is a placeholder"),
    (["api", "--db", "postgresql://wk:password@127.0.0.1:1/wk"],
     {"WATCHKEEPER_API_TOKEN": "8f742231b10e8888abcd99"},
     "the password in --db is a placeholder"),
    (["worker", "--config", "c.yaml"],
     {"WATCHKEEPER_DATABASE_URL": "postgresql://watchkeeper:watchkeeper@db/watchkeeper"},
     "the password in WATCHKEEPER_DATABASE_URL is a placeholder"),
], ids=["placeholder", "short", "test token", "example token", "xxxx token", "blank",
        "db password", "db password = user"])
def test_outside_development_a_server_refuses_a_placeholder_secret_naming_the_variable(
    argv: list[str], env: dict[str, str], line: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ("WATCHKEEPER_ENV", "WATCHKEEPER_SLACK_BOT_TOKEN", "WATCHKEEPER_API_TOKEN",
                "WATCHKEEPER_SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"watchkeeper: error: {line} (WATCHKEEPER_ENV=development accepts it)\n"
    assert list(tmp_path.iterdir()) == []  # it stopped before opening anything
    # in development the same command goes past the check (to the missing database)
    monkeypatch.setenv("WATCHKEEPER_ENV", "development")
    assert main(argv) != 0
    assert line not in capsys.readouterr().err
