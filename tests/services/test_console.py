"""The console over HTTP (FastAPI's TestClient): sign-in, CSRF, the proxy header, the
security headers, /metrics and /readyz, silences, the lists' pagination and their indexes.
The same pages in a real browser: tests/browser."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

import services.console as console_module
from alerts.store import AlertFilter
from alerts.store.sql import SqlStore
from config.errors import RetryableError
from config.file import TriagePolicy
from services.api import CONTENT_SECURITY_POLICY, build_api
from services.console import ConsoleSettings
from tests.services.test_slack_flow import replay_into_db

TOKEN = "console-test-token-0123456789"
NOW = 1_900_000_000.0


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return replay_into_db(tmp_path, "broken_pipeline", monkeypatch)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def lead(db: Path) -> str:
    ((alert_id,),) = rows(db, "SELECT alert_id FROM pages")
    return str(alert_id)


@pytest.fixture
def client(db: Path) -> Iterator[TestClient]:
    app = build_api(SqlStore(str(db), migrate=False), None, None, api_token=TOKEN,
                    clock=lambda: NOW)
    with TestClient(app, base_url="http://console.test", follow_redirects=False) as c:
        yield c


def csrf(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, path
    return found.group(1)


def sign_in(client: TestClient, name: str = "alice") -> None:
    resp = client.post("/login", data={"csrf": csrf(client, "/login"), "name": name,
                                       "token": TOKEN, "next": "/"})
    assert (resp.status_code, resp.headers["location"]) == (303, "/")


def test_pages_need_a_sign_in_with_the_api_token(client: TestClient, db: Path) -> None:
    alert_id = lead(db)
    resp = client.get(f"/alerts/{alert_id}")
    assert (resp.status_code, resp.headers["location"]) == (
        303, f"/login?next=%2Falerts%2F{alert_id}")
    token = csrf(client, "/login")
    for name, given in (("alice", "wrong"), ("", TOKEN)):
        refused = client.post("/login", data={"csrf": token, "name": name, "token": given})
        assert refused.status_code == 401 and "right API token" in refused.text
    # somewhere else after signing in: refused (an open redirect otherwise)
    resp = client.post("/login", data={"csrf": token, "name": "alice", "token": TOKEN,
                                       "next": "//evil.example/x"})
    assert (resp.status_code, resp.headers["location"]) == (303, "/")
    page = client.get(f"/alerts/{alert_id}")
    assert page.status_code == 200 and "performance on" in page.text
    cookie = page.headers.get("set-cookie", "") or resp.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert client.get("/alerts/no-such-alert").status_code == 404


def test_an_action_needs_the_form_token_and_this_origin(client: TestClient, db: Path) -> None:
    alert_id = lead(db)
    sign_in(client)
    token = csrf(client, f"/alerts/{alert_id}")
    path = f"/alerts/{alert_id}/act"
    for data, headers in (({"action": "acknowledge"}, {}),
                          ({"action": "acknowledge", "csrf": "forged"}, {}),
                          ({"action": "acknowledge", "csrf": token},
                           {"Origin": "http://evil.example"}),
                          ({"action": "acknowledge", "csrf": token},
                           {"Sec-Fetch-Site": "cross-site"})):
        assert client.post(path, data=data, headers=headers).status_code == 400
    assert rows(db, "SELECT count(*) FROM acknowledgements") == [(0,)]
    resp = client.post(path, data={"action": "acknowledge", "csrf": token, "note": "on it"},
                       headers={"Origin": "http://console.test"})
    assert (resp.status_code, resp.headers["location"]) == (
        303, f"/alerts/{alert_id}?done=acknowledge")
    assert rows(db, f"SELECT status, acknowledged_by FROM alert_history "
                    f"WHERE alert_id = '{alert_id}'") == [("acknowledged", "alice")]
    assert rows(db, "SELECT action, actor, note FROM acknowledgements") == [
        ("acknowledge", "alice", "on it")]
    assert "Acknowledged by alice." in client.get(resp.headers["location"]).text
    metrics = client.get("/metrics").text
    assert 'watchkeeper_api_actions_total{action="acknowledge",via="console"} 1.0' in metrics
    assert ('watchkeeper_api_requests_total{method="POST",route="/alerts/{alert_id}/act",'
            'status="400"} 4.0') in metrics
    # signed out: the session's token is gone with it
    client.post("/logout", data={"csrf": token})
    assert client.get(f"/alerts/{alert_id}").status_code == 303


def test_a_reverse_proxy_header_signs_people_in(db: Path) -> None:
    app = build_api(SqlStore(str(db), migrate=False), None, None, api_token=None,
                    console=ConsoleSettings(user_header="X-Forwarded-User"), clock=lambda: NOW)
    alert_id = lead(db)
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(f"/alerts/{alert_id}").status_code == 303  # no header, no token
        assert "not set up" in client.get("/login").text
        who = {"X-Forwarded-User": "carol@example.com"}
        page = client.get(f"/alerts/{alert_id}", headers=who)
        assert page.status_code == 200 and "carol@example.com" in page.text
        token = re.findall(r'name="csrf" value="([^"]+)"', page.text)[0]
        resp = client.post(f"/alerts/{alert_id}/act", headers=who,
                           data={"action": "resolve", "csrf": token})
        assert resp.status_code == 303
    assert rows(db, "SELECT action, actor FROM acknowledgements") == [
        ("resolve", "carol@example.com")]


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    for method, path, status in [
            ("GET", "/healthz", 200), ("GET", "/readyz", 200), ("GET", "/login", 200),
            ("GET", "/", 303), ("GET", "/static/charts.js", 200), ("GET", "/nope", 404),
            ("GET", "/static/nope.js", 404), ("POST", "/slack/interactions", 401),
            ("POST", "/api/alerts/x/ack", 401), ("GET", "/metrics", 200)]:
        resp = client.request(method, path)
        assert resp.status_code == status, path
        assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "same-origin"
        assert "server" not in resp.headers


def test_readyz_says_when_the_database_is_away(db: Path) -> None:
    class Away(SqlStore):
        def ping(self) -> None:
            raise RetryableError("the database is unavailable: refused")

    with TestClient(build_api(Away(str(db), migrate=False), None, None,
                              api_token=TOKEN)) as client:
        assert client.get("/healthz").status_code == 200
        resp = client.get("/readyz")
        assert (resp.status_code, resp.json()) == (
            503, {"ok": False, "error": "the database is unavailable: refused"})


def test_silences_are_created_and_expired(client: TestClient, db: Path) -> None:
    sign_in(client, "dave")
    token = csrf(client, "/silences")
    assert client.post("/silences", data={"csrf": token}).status_code == 400  # matches all
    assert client.post("/silences", data={"csrf": token, "kind": "bogus"}).status_code == 400
    resp = client.post("/silences", data={"csrf": token, "model": "car_loan", "kind": "drift",
                                          "subject": "car_*", "hours": "2",
                                          "comment": "backfill"})
    assert resp.status_code == 303
    ((silence_id, ends),) = rows(db, "SELECT silence_id, ends_at FROM silences")
    assert ends.startswith("2030-03-17 19:46:40")  # NOW (17:46:40Z) + 2 h
    assert "backfill" in client.get("/silences").text
    store = SqlStore(str(db), migrate=False)
    (silence,) = store.load_mutes(TriagePolicy())[0]
    assert (silence.model_id, silence.kind, silence.subject, silence.created_by,
            silence.ends_at - silence.starts_at) == ("car_loan", "drift", "car_*", "dave",
                                                     7200.0)
    assert client.post(f"/silences/{silence_id}/expire",
                       data={"csrf": token}).status_code == 303
    assert store.load_mutes(TriagePolicy())[0][0].ends_at == NOW
    assert client.post("/silences/nope/expire", data={"csrf": token}).status_code == 404


def test_the_alert_list_pages_through_every_alert_newest_first(
        client: TestClient, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_module, "PAGE", 3)
    sign_in(client)
    expected = [r[0] for r in rows(db, "SELECT alert_id FROM alerts WHERE kind = "
                                       "'performance' ORDER BY first_seen DESC, alert_id DESC")]
    assert len(expected) == 8  # pages of 3, 3 and 2
    seen: list[str] = []
    url: str | None = "/alerts?kind=performance"
    while url:
        page = client.get(url).text
        seen += re.findall(r'<td class="nowrap"><a href="/alerts/([^"]+)">', page)
        nxt = re.search(r'<a href="([^"]+)">Older', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == expected
    assert client.get("/alerts?kind=bogus").status_code == 400
    assert client.get("/alerts?since=yesterday").status_code == 400


def test_the_console_reads_by_index(db: Path) -> None:
    """Every list query is an index range in the order it shows (SQLite's plan): no scan
    of a table, no sort of its rows (but of the unresolved incidents, and of one incident's
    alerts), however many alerts a year brings."""
    store = SqlStore(str(db), migrate=False)
    statements: list[tuple[str, Any]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    alert_id = lead(db)
    (model_id,) = {r[0] for r in rows(db, "SELECT model_id FROM alerts")}
    first, last = store.snapshot_span(model_id) or (None, None)
    assert first is not None and last is not None
    _, nxt = store.alerts_page(AlertFilter(), limit=2)
    store.alerts_page(AlertFilter(), limit=2, after=nxt)
    for where in (AlertFilter(status="open"), AlertFilter(kind="drift"),
                  AlertFilter(model=model_id)):
        store.alerts_page(where, limit=2)
    store.incidents_page(limit=2)
    store.alert_record(alert_id)
    store.snapshots(model_id, first, last)
    store.model_alerts(model_id, first, last)
    plans = []
    with sqlite3.connect(db) as conn:
        for sql, params in statements:
            plan = " / ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            plans.append(plan)
            # sorted, and few: the unresolved incidents (by status), an incident's alerts
            if not plan.startswith(("SEARCH incidents USING INDEX ix_incidents_status",
                                    "SEARCH alerts USING INDEX ix_alerts_incident_id")):
                assert "TEMP B-TREE" not in plan, (sql, plan)
            assert not re.search(r"\bSCAN (alerts|incidents|occurrences|statistic_snapshots"
                                 r"|feedback|acknowledgements|page_log)\b(?! USING)", plan), (
                sql, plan)
    assert len(plans) >= 12
