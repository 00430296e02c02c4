"""The console over HTTP (FastAPI's TestClient): sign-in, CSRF, the proxy header, the
security headers, /metrics and /readyz, silences, the lists' pagination and their indexes.
The same pages in a real browser: tests/browser.

Each test runs on SQLite and on a fresh PostgreSQL database (``pg_db``: without
``DATABASE_URL`` the PostgreSQL variant skips, unless ``WATCHKEEPER_REQUIRE_SERVICES=1``,
where it fails)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, make_url, text

import services.console as console_module
from alerts.store import AlertFilter, Cursor
from alerts.store.schema import database_url
from alerts.store.sql import SqlStore
from config.errors import RetryableError
from config.file import TriagePolicy
from config.settings import ConsoleSettings, load_settings
from services.api import CONTENT_SECURITY_POLICY, build_api
from sim.scenarios import generate, write_scenario
from tests.integration.conftest import pg_db, postgres_url  # noqa: F401 - fixtures
from watchkeeper.cli import main
from watchkeeper.demo import DEMO_PREDICTIONS

TOKEN = "console-test-token-0123456789"
NOW = 1_900_000_000.0
SERVER_ZONE = "Asia/Kathmandu"  # the PostgreSQL database's TimeZone: UTC+05:45
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@dataclass(frozen=True)
class Db:
    """A replayed scenario's database: ``url`` as ``--db`` takes it."""

    backend: str
    url: str

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        engine = create_engine(database_url(self.url))
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def store(self) -> SqlStore:
        return SqlStore(self.url, migrate=False)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Db:
    """A broken-pipeline replay (5,000 predictions: one page), by the CLI, on SQLite or on
    a fresh PostgreSQL database."""
    monkeypatch.chdir(tmp_path)
    url = str(tmp_path / "wk.db")
    if request.param == "postgresql":
        url = str(request.getfixturevalue("pg_db"))
        engine = create_engine(database_url(url))
        with engine.begin() as conn:  # whatever the server's zone, the console shows UTC
            conn.execute(text(f'ALTER DATABASE "{make_url(url).database}" '
                              f"SET timezone TO '{SERVER_ZONE}'"))
        engine.dispose()
    files = write_scenario(generate("broken_pipeline", predictions=5_000, seed=7),
                           tmp_path / "broken_pipeline.jsonl")
    assert main(["replay", str(files.events), "--config", str(files.config), "--db", url,
                 "-q"]) == 0
    return Db(request.param, url)


def rows(db: Db, sql: str) -> list[tuple[Any, ...]]:
    return db.rows(sql)


def utc(stored: Any) -> datetime:
    """A stored time as UTC: SQLite's text (naive, UTC) or PostgreSQL's in its zone."""
    at = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def lead(db: Db) -> str:
    ((alert_id,),) = rows(db, "SELECT alert_id FROM pages")
    return str(alert_id)


@pytest.fixture
def client(db: Db) -> Iterator[TestClient]:
    app = build_api(db.store(), None, None, api_token=TOKEN, clock=lambda: NOW)
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


def test_pages_need_a_sign_in_with_the_api_token(client: TestClient, db: Db) -> None:
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


def test_an_action_needs_the_form_token_and_this_origin(client: TestClient, db: Db) -> None:
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


def test_failed_sign_ins_are_limited_per_client(db: Db) -> None:
    """10 failures in 5 minutes from one address: its sign-ins answer 429 with Retry-After
    (the right token too) until the first failure is 5 minutes old; another address and
    the signed-in are not affected; the limiter remembers a bounded number of clients."""
    now = [NOW]
    app = build_api(db.store(), None, None, api_token=TOKEN, clock=lambda: now[0])
    with (TestClient(app, follow_redirects=False, client=("192.0.2.1", 1)) as guesser,
          TestClient(app, follow_redirects=False, client=("192.0.2.2", 1)) as other):
        sign_in(other, "bob")
        token = csrf(guesser, "/login")
        for n in range(10):
            now[0] = NOW + n
            resp = guesser.post("/login", data={"csrf": token, "name": "x", "token": f"g{n}"})
            assert resp.status_code == 401
        for given in ("g10", TOKEN):
            resp = guesser.post("/login", data={"csrf": token, "name": "x", "token": given})
            assert (resp.status_code, resp.headers["retry-after"]) == (429, "291")
            assert "too many failed sign-ins" in resp.text
        assert other.get("/").status_code == 200  # signed in before: unaffected
        sign_in(other, "bob")  # another address: unaffected
        now[0] = NOW + 300  # the first failure is 5 minutes old: one more try
        resp = guesser.post("/login", data={"csrf": token, "name": "x", "token": "g11"})
        assert resp.status_code == 401
        assert guesser.post("/login", data={"csrf": token, "name": "x", "token": TOKEN}
                            ).status_code == 429  # the 11th failure in 5 minutes
        now[0] = NOW + 301
        sign_in(guesser, "carol")
    metrics = TestClient(app).get("/metrics").text
    assert 'watchkeeper_console_logins_total{outcome="limited"} 3.0' in metrics
    assert 'watchkeeper_console_logins_total{outcome="refused"} 11.0' in metrics


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # refused before it is opened
def test_console_settings_are_read_once_and_checked_like_the_others(
        db: Db, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed WATCHKEEPER_CONSOLE_* value is one line and exit 2; a placeholder or
    short session secret is refused outside development, naming the variable, its value
    never shown."""
    monkeypatch.setenv("WATCHKEEPER_API_TOKEN", TOKEN)
    monkeypatch.delenv("WATCHKEEPER_ENV", raising=False)
    for name, value, said in (
            ("SESSION_HOURS", "twelve", "settings: WATCHKEEPER_CONSOLE_SESSION_HOURS: Input "
                                        "should be a valid number"),
            ("SESSION_HOURS", "0", "settings: WATCHKEEPER_CONSOLE_SESSION_HOURS: Input "
                                   "should be greater than 0"),
            ("SECURE_COOKIES", "maybe", "settings: WATCHKEEPER_CONSOLE_SECURE_COOKIES: "),
            ("SIGN_IN_FAILURES", "-1", "settings: WATCHKEEPER_CONSOLE_SIGN_IN_FAILURES: "),
            ("SESSION_SECRET", "changeme", "WATCHKEEPER_CONSOLE_SESSION_SECRET is a "
                                           "placeholder"),
            ("SESSION_SECRET", "k3y-Qx9z", "WATCHKEEPER_CONSOLE_SESSION_SECRET is shorter "
                                           "than 16 characters")):
        with monkeypatch.context() as env:
            env.setenv(f"WATCHKEEPER_CONSOLE_{name}", value)
            assert main(["api", "--db", db.url, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"watchkeeper: error: {said}") and err.count("\n") == 1, err
        assert len(value) < 3 or value not in err
    monkeypatch.setenv("WATCHKEEPER_CONSOLE_SESSION_SECRET", "4c0f9e2a7d1b8e3f5a6c99")
    monkeypatch.setenv("WATCHKEEPER_CONSOLE_SIGN_IN_FAILURES", "3")
    settings = load_settings()
    assert (settings.console.sign_in_failures, settings.reveal("session_secret")) == (
        3, "4c0f9e2a7d1b8e3f5a6c99")
    assert "4c0f9e2a7d1b8e3f5a6c99" not in repr(settings) + str(settings.console)


def test_a_reverse_proxy_header_signs_people_in(db: Db) -> None:
    app = build_api(db.store(), None, None, api_token=None,
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


def test_readyz_says_when_the_database_is_away(db: Db) -> None:
    class Away(SqlStore):
        def ping(self) -> None:
            raise RetryableError("the database is unavailable: refused")

    with TestClient(build_api(Away(db.url, migrate=False), None, None,
                              api_token=TOKEN)) as client:
        assert client.get("/healthz").status_code == 200
        resp = client.get("/readyz")
        assert (resp.status_code, resp.json()) == (
            503, {"ok": False, "error": "the database is unavailable: refused"})


def test_silences_are_created_and_expired(client: TestClient, db: Db) -> None:
    sign_in(client, "dave")
    token = csrf(client, "/silences")
    assert client.post("/silences", data={"csrf": token}).status_code == 400  # matches all
    assert client.post("/silences", data={"csrf": token, "kind": "bogus"}).status_code == 400
    resp = client.post("/silences", data={"csrf": token, "model": "car_loan", "kind": "drift",
                                          "subject": "car_*", "hours": "2",
                                          "comment": "backfill"})
    assert resp.status_code == 303
    ((silence_id, ends),) = rows(db, "SELECT silence_id, ends_at FROM silences")
    assert utc(ends) == datetime(2030, 3, 17, 19, 46, 40, tzinfo=UTC)  # NOW (17:46:40Z) + 2 h
    page = client.get("/silences").text
    assert "backfill" in page and "<td>2030-03-17 19:46:40Z</td>" in page  # UTC, as stored
    store = db.store()
    (silence,) = store.load_mutes(TriagePolicy())[0]
    assert (silence.model_id, silence.kind, silence.subject, silence.created_by,
            silence.ends_at - silence.starts_at) == ("car_loan", "drift", "car_*", "dave",
                                                     7200.0)
    assert client.post(f"/silences/{silence_id}/expire",
                       data={"csrf": token}).status_code == 303
    assert store.load_mutes(TriagePolicy())[0][0].ends_at == NOW
    assert client.post("/silences/nope/expire", data={"csrf": token}).status_code == 404


def listed(client: TestClient, url: str | None) -> list[tuple[str, str]]:
    """The alerts a list shows, (id, raised), following its "Older" links to the end."""
    seen: list[tuple[str, str]] = []
    while url:
        page = client.get(url).text
        seen += re.findall(r'<td class="nowrap"><a href="/alerts/([^"]+)">([^<]+)</a>', page)
        nxt = re.search(r'<a href="([^"]+)">Older', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    return seen


def test_the_alert_list_pages_through_every_alert_newest_first(
        client: TestClient, db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyset pages: through alerts raised at the same moment (14 alerts at 9 moments, in
    pages of 2), and within a time range (UTC, whatever the database's zone)."""
    sign_in(client)
    everything = [(r[0], utc(r[1]), r[2]) for r in rows(
        db, "SELECT alert_id, first_seen, kind FROM alerts")]
    newest_first = sorted(everything, key=lambda r: (r[1], r[0]), reverse=True)
    assert (len(everything), len({r[1] for r in everything})) == (14, 9)  # ties

    def shown(wanted: list[tuple[str, datetime, str]]) -> list[tuple[str, str]]:
        return [(i, at.strftime("%Y-%m-%d %H:%M:%SZ")) for i, at, _ in wanted]

    monkeypatch.setattr(console_module, "PAGE", 3)
    performance = [r for r in newest_first if r[2] == "performance"]
    assert len(performance) == 8  # pages of 3, 3 and 2
    assert listed(client, "/alerts?kind=performance") == shown(performance)
    monkeypatch.setattr(console_module, "PAGE", 2)
    assert listed(client, "/alerts") == shown(newest_first)
    since, until = datetime(2019, 3, 1, 0, 45, tzinfo=UTC), datetime(2019, 3, 1, 2, tzinfo=UTC)
    within = [r for r in newest_first if since <= r[1] < until]
    assert 0 < len(within) < len(everything)
    assert listed(client, "/alerts?since=2019-03-01T00:45&until=2019-03-01T02:00") == shown(
        within)
    # the same range written in another zone
    assert listed(client, "/alerts?" + urlencode({"since": "2019-03-01T06:30+05:45",
                                                 "until": "2019-03-01T02:00Z"})) == shown(within)
    assert client.get("/alerts?kind=bogus").status_code == 400
    assert client.get("/alerts?since=yesterday").status_code == 400


def test_a_model_page_lists_the_alerts_seen_in_its_range(db: Db) -> None:
    """Raised in the range, or before it and still seen in it; newest raised first."""
    everything = [(r[0], utc(r[1]), utc(r[2])) for r in rows(
        db, "SELECT alert_id, first_seen, last_seen FROM alerts")]
    store = db.store()
    starts = sorted({r[1] for r in everything})
    spanning = 0
    for since, until in ((starts[0], starts[-1]), (starts[2], starts[4]),
                         (starts[3] + timedelta(seconds=1), starts[3] + timedelta(minutes=5))):
        expected = sorted(((i, f) for i, f, last in everything
                           if f <= until and last >= since), key=lambda r: (r[1], r[0]),
                          reverse=True)
        found = [(a["alert_id"], a["first_seen"]) for a in
                 store.model_alerts("car_loan", since, until)]
        assert found == expected and expected, (since, until)
        spanning += sum(f < since for _, f in found)
        assert store.model_alerts("car_loan", since, until, limit=2) == store.model_alerts(
            "car_loan", since, until)[:2]
    assert spanning >= 5  # raised before their range, and listed
    store.close()


def test_model_health_shows_the_levels_before_the_incident(tmp_path: Path) -> None:
    """The demo's harmful-drift model: the car_value drift and overall accuracy charts have
    values from the start (clear evaluations' samples), below their threshold before the
    incident's onset, not only the signals' after it; the alert's band starts after it."""
    model_id = "loan_harmful_drift"
    scenario = generate("harmful_drift", predictions=DEMO_PREDICTIONS, seed=7,
                        model_id=model_id)
    files = write_scenario(scenario, tmp_path / "harmful_drift.jsonl")
    url = str(tmp_path / "wk.db")
    assert main(["replay", str(files.events), "--config", str(files.config), "--db", url,
                 "-q"]) == 0
    onset = datetime.fromisoformat(
        str(scenario.events[scenario.incidents[0].onset_index]["ts"])).timestamp()
    app = build_api(SqlStore(url, migrate=False), None, None, api_token=TOKEN,
                    clock=lambda: NOW)
    with TestClient(app, base_url="http://console.test", follow_redirects=False) as client:
        sign_in(client)
        page = client.get(f"/models/{model_id}")
    assert page.status_code == 200
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>',
                      page.text, re.S)
    assert found
    charts = {c["title"]: c for c in json.loads(found.group(1))["charts"]}
    for title, label in (("car_value: psi (drift)", "psi"), ("accuracy: overall", "realized")):
        chart = charts[title]
        values = next(s["values"] for s in chart["series"] if s["label"] == label)
        line = next(s["values"] for s in chart["series"] if s["role"] == "threshold")
        before = [(x, v, t) for x, v, t in zip(chart["x"], values, line, strict=True)
                  if x < onset and v is not None]
        # the drift chart's: windows of 1,000 predictions, 8 before the onset, one sample in
        # 5 kept (triage.sample_every)
        assert len(before) >= 2, title
        if label == "psi":  # a psi fires above its threshold
            assert all(v < t for _, v, t in before), before
        else:  # an accuracy over 200 labels is noisy: the CUSUM decides, not one value
            assert sum(v - t for _, v, t in before) > 0, before
        assert chart["bands"] and min(b[0] for b in chart["bands"]) > onset, title
    assert len(charts) > 40  # every series tested, not only those that fired


def console_reads(db: Db, store: SqlStore, *, deep: Cursor | None = None,
                  ) -> list[tuple[str, Any]]:
    """The SELECTs (statement, parameters) of the console's reads: every list, its next
    page (and the page after ``deep``), an alert's page, a model's page."""
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
    first = max(first, last - timedelta(days=console_module.DEFAULT_DAYS))  # as the page
    _, nxt = store.alerts_page(AlertFilter(), limit=2)
    store.alerts_page(AlertFilter(), limit=2, after=nxt)
    if deep is not None:
        store.alerts_page(AlertFilter(), limit=2, after=deep)
    for where in (AlertFilter(status="open"), AlertFilter(kind="drift"),
                  AlertFilter(model=model_id)):
        store.alerts_page(where, limit=2)
    store.incidents_page(limit=2)
    _, nxt = store.incidents_page(unresolved=False, limit=1)
    store.incidents_page(unresolved=False, limit=2, after=nxt)
    store.incidents_page(model=model_id, unresolved=False, limit=2)
    store.alert_record(alert_id)
    store.snapshots(model_id, first, last)
    store.model_alerts(model_id, first, last)
    store.model_alerts(model_id, last - timedelta(hours=6), last)  # fewer than a page
    event.remove(store.engine, "before_cursor_execute", keep)
    return statements


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_console_reads_by_index(db: Db) -> None:
    """Every list query is an index range in the order it shows (SQLite's plan): no scan
    of a table, no sort of its rows (but of the unresolved incidents, and of one incident's
    alerts), however many alerts a year brings."""
    plans = []
    with sqlite3.connect(db.url) as conn:
        for sql, params in console_reads(db, db.store()):
            plan = " / ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            plans.append(plan)
            # sorted, and few: the unresolved incidents (by status), an incident's alerts
            # and a model's alerts raised before a range and still seen in it
            if not plan.startswith(("SEARCH incidents USING INDEX ix_incidents_status",
                                    "SEARCH alerts USING INDEX ix_alerts_incident_id",
                                    "SEARCH alerts USING INDEX ix_alerts_model_last_seen")):
                assert "TEMP B-TREE" not in plan, (sql, plan)
            assert not re.search(r"\bSCAN (alerts|incidents|occurrences|statistic_snapshots"
                                 r"|feedback|acknowledgements|page_log)\b(?! USING)", plan), (
                sql, plan)
    assert len(plans) >= 12


# A year of history added to the replay on PostgreSQL: table, rows, the columns that differ
# from the copied row (``g``: 1..rows; one alert every 10 minutes, 2% of them open, ...)
YEAR = [
    ("incidents", 20_000, {"incident_id": "'y-' || g", "lead_alert_id": "NULL",
                           "opened_at": "t.opened_at - g * interval '26 minutes'",
                           "status": "CASE WHEN g % 100 = 0 THEN 'open' ELSE 'resolved' END"}),
    ("alerts", 50_000, {"alert_id": "'y-' || g", "fingerprint": "md5(g::text)",
                        "first_seq": "g", "incident_id": "NULL",
                        "first_seen": "t.first_seen - g * interval '10 minutes'",
                        "last_seen": "t.first_seen - g * interval '10 minutes' + "
                                     "interval '30 minutes'",
                        "status": "CASE WHEN g % 50 = 0 THEN 'open' ELSE 'resolved' END",
                        "kind": "(ARRAY['drift','data_quality','performance'])[g % 3 + 1]"}),
    ("occurrences", 100_000, {"alert_id": "'y-' || (g % 50000 + 1)",
                              "fingerprint": "md5(g::text)", "seq": "g"}),
    ("statistic_snapshots", 100_000, {"fingerprint": "md5(g::text)", "seq": "g",
                                      "ts": "t.ts - g * interval '5 minutes'"}),
    ("feedback", 20_000, {"alert_id": "'y-' || g"}),
    ("acknowledgements", 20_000, {"alert_id": "'y-' || g"}),
]
BIG_TABLES = {table for table, _, _ in YEAR}
ROWS_READ = 2_000  # rows a console read may touch beyond those it returns, in every scan


def add_a_year(db: Db) -> None:
    """Copies of a stored row of each of :data:`YEAR`'s tables (its own serial id, new
    keys), then ANALYZE, so the planner knows the tables' size."""
    engine = create_engine(database_url(db.url))
    with engine.begin() as conn:
        for table, count, changed in YEAR:
            columns = [c for c, default in conn.execute(text(
                "SELECT column_name, column_default FROM information_schema.columns "
                "WHERE table_name = :t ORDER BY ordinal_position"), {"t": table})
                if not str(default).startswith("nextval(")]
            values = ", ".join(changed.get(c, f"t.{c}") for c in columns)
            conn.execute(text(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM "
                f"(SELECT * FROM {table} LIMIT 1) t CROSS JOIN generate_series(1, {count}) g"))
        conn.execute(text("ANALYZE"))
    engine.dispose()


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.mark.parametrize("db", [BACKENDS[1]], indirect=True)
def test_the_console_reads_by_index_on_postgresql(db: Db) -> None:
    """Every list query reads a page's worth of rows by index on PostgreSQL, chosen by the
    planner itself (no ``enable_seqscan = off``): on the replay plus a year of history
    (:data:`YEAR`: 50,000 alerts, 20,000 incidents, 100,000 occurrences and snapshots),
    analyzed. ``EXPLAIN (ANALYZE)`` of each read: no sequential scan of a large table, and
    no scan that reads, or filters out, :data:`ROWS_READ` rows more than the read returns
    (a model page returns a week of snapshots; a list, a page) (so no sort but of
    that few: the planner sorts an alert's few occurrences, say), the page after a cursor
    deep in the year included (a keyset that is a filter, not an index range, reads every
    newer row)."""
    store = db.store()
    for action in ("acknowledge", "not_actionable"):  # rows for add_a_year to copy
        store.act(lead(db), action, "alice", datetime.fromtimestamp(NOW, tz=UTC))
    add_a_year(db)
    ((deep_at, deep_id),) = rows(db, "SELECT first_seen, alert_id FROM alerts "
                                     "WHERE alert_id = 'y-40000'")
    statements = console_reads(db, store, deep=Cursor(utc(deep_at), deep_id))
    assert len(statements) >= 14
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for sql, params in statements:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            (((top,),),) = cursor.fetchall()
            nodes = list(plan_nodes(top["Plan"]))
            returned = top["Plan"]["Actual Rows"]
            for node in nodes:
                relation = node.get("Relation Name")
                assert not (node["Node Type"] == "Seq Scan" and relation in BIG_TABLES), (
                    sql, node)
                if relation is not None:
                    read = node["Actual Rows"] * node["Actual Loops"] + node.get(
                        "Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
                    assert read <= ROWS_READ + returned, (sql, relation, read)
    finally:
        raw.close()
        store.close()
