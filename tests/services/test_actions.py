"""The same actions from the command line and from the HTTP API (bearer token)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import services.pipeline as pipeline_module
from alerts.store.sql import SqlStore
from config.file import load_config
from services.api import build_api
from sim.scenarios import generate, write_scenario
from tests.services.test_slack_flow import paged, slack  # noqa: F401 - fixtures
from watchkeeper.cli import main

TOKEN = "s3cret-token"
ACTION = {"ack": "acknowledge", "resolve": "resolve", "silence": "silence",
          "not-actionable": "not_actionable"}


def lead(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        (alert_id,) = conn.execute("SELECT alert_id FROM pages").fetchone()
    return str(alert_id)


def one(db: Path, sql: str) -> tuple[Any, ...]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(sql).fetchone()
    return tuple(row)


@pytest.mark.parametrize(("verb", "status", "table"), [
    ("ack", "acknowledged", None), ("resolve", "resolved", None),
    ("silence", "silenced", "silences"), ("not-actionable", "open", "feedback")])
def test_cli_actions(paged: Path, verb: str, status: str, table: str | None,  # noqa: F811
                     capsys: pytest.CaptureFixture[str]) -> None:
    alert_id = lead(paged)
    assert main([verb, alert_id[:8], "--by", "alice", "--db", str(paged)]) == 0
    assert one(paged, f"SELECT status FROM alert_history WHERE alert_id = '{alert_id}'") == (
        status,)
    assert one(paged, "SELECT action, actor FROM acknowledgements") == (ACTION[verb], "alice")
    if table:
        assert one(paged, f"SELECT count(*) FROM {table}") == (1,)
    assert f"status {status}" in capsys.readouterr().out


def test_cli_action_on_an_unknown_alert_exits_2(paged: Path,  # noqa: F811
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ack", "no-such-alert", "--db", str(paged)]) == 2
    assert "0 alerts match" in capsys.readouterr().err


def call(db: Path, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    app = build_api(SqlStore(str(db), migrate=False), None, None, api_token=TOKEN)
    with TestClient(app) as client:
        resp = client.post(path, json=body, headers=headers)
        return resp.status_code, resp.json()


def test_http_actions_need_the_token(paged: Path) -> None:  # noqa: F811
    alert_id = lead(paged)
    path = f"/api/alerts/{alert_id}/ack"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        assert call(paged, path, headers)[0] == 401
    assert one(paged, f"SELECT status FROM alert_history WHERE alert_id = '{alert_id}'") == (
        "open",)
    status, body = call(paged, path, {"Authorization": f"Bearer {TOKEN}"}, {"by": "bob"})
    assert status == 200
    assert body == {"ok": True, "alert_id": alert_id, "status": "acknowledged",
                    "acknowledged_by": "bob"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert call(paged, f"/api/alerts/{alert_id}/explode", auth)[0] == 404
    assert call(paged, "/api/alerts/nope/resolve", auth)[0] == 404


def test_slack_interactions_are_refused_without_a_signing_secret(paged: Path) -> None:  # noqa: F811
    status, _ = call(paged, "/slack/interactions", {"X-Slack-Signature": "v0=00",
                                                    "X-Slack-Request-Timestamp": "1"})
    assert status == 401


def test_a_running_pipeline_picks_up_new_silences_and_feedback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = write_scenario(generate("broken_pipeline", predictions=3_000, seed=7),
                           tmp_path / "bp.jsonl")
    store = SqlStore(str(tmp_path / "wk.db"))
    pipe = pipeline_module.Pipeline(load_config(files.config), store, source="x")
    lines = files.events.read_bytes().splitlines()
    pipe.feed(lines[:2500])
    assert pipe.triage.feedback == {}
    assert pipe.triage.alerts, "the first 2,500 events raise alerts"
    alert_id = next(iter(pipe.triage.alerts))
    store.act(alert_id, "not_actionable", "alice", datetime.now(tz=UTC))
    store.act(alert_id, "silence", "alice", datetime.now(tz=UTC), silence_for=3600)
    pipe.feed(lines[2500:2600])
    assert pipe.triage.feedback == {}  # not yet: refreshed every 30 s
    monkeypatch.setattr(pipeline_module, "MUTES_REFRESH_SECONDS", 0.0)
    pipe.feed(lines[2600:2700])
    alert = pipe.triage.alerts[alert_id]
    assert pipe.triage.feedback == {(alert.model_id, alert.kind, alert.subject): 1}
    assert [(s.model_id, s.kind, s.subject) for s in pipe.triage.silences] == [
        (alert.model_id, alert.kind, alert.subject)]


def test_alerts_list_and_show_print_the_history_of_the_paged_alert(
        paged: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    alert_id = lead(paged)
    summary, kind, n = one(paged, "SELECT summary, kind, occurrences FROM alert_history "
                                  f"WHERE alert_id = '{alert_id}'")
    assert main(["alerts", "list", "--db", str(paged), "--kind", kind]) == 0
    listed = capsys.readouterr().out
    assert alert_id[:8] in listed and "alerts (newest first)" in listed
    assert main(["alerts", "show", alert_id[:8], "--db", str(paged)]) == 0
    shown = capsys.readouterr().out
    assert summary in shown.replace("\n", "")
    assert f"  alert_id         {alert_id}" in shown
    assert "why (severity factors):" in shown and f"occurrences ({n};" in shown
    assert "level 0, pending" in shown  # its page waits in the outbox
    assert main(["alerts", "show", "zzzz", "--db", str(paged)]) == 2
    assert "no alert 'zzzz'" in capsys.readouterr().err
    assert main(["sql", "SELECT nonsense FROM alert_history", "--db", str(paged)]) == 2
    assert "no such column: nonsense" in capsys.readouterr().err
