"""Slack end to end, against a local fake of Slack's Web API: a scenario pages, the page
reaches Slack once (through 429s, 5xx and timeouts), a correctly signed Acknowledge
updates the alert and the message, bad signatures change nothing, and "not actionable"
lowers the next alert's score until it no longer pages."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from alerts.store.sql import SqlStore
from alerts.triage import Triage
from config.file import OnCallSpec, Shift, TriagePolicy
from config.settings import SlackSettings
from services.api import build_api
from services.notifier import Notifier, slack_client
from sim.scenarios import generate, write_scenario
from stream.signals import Evaluation, Kind, Scope, Signal, Window
from tests.fakes.slack import FakeSlack, Fault
from watchkeeper.cli import main

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_900_000_000.0


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSlack, SlackSettings]]:
    fake = FakeSlack()
    url = fake.start()
    monkeypatch.setenv("WATCHKEEPER_SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("WATCHKEEPER_SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("WATCHKEEPER_SLACK_API_URL", url)
    yield fake, SlackSettings()
    fake.stop()


def replay_into_db(tmp_path: Path, scenario: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Replay a 5,000-prediction scenario with the CLI into ``tmp_path/wk.db``."""
    monkeypatch.chdir(tmp_path)
    files = write_scenario(generate(scenario, predictions=5_000, seed=7),
                           tmp_path / f"{scenario}.jsonl")
    db = tmp_path / "wk.db"
    assert main(["replay", str(files.events), "--config", str(files.config), "--db", str(db),
                 "-q"]) == 0
    return db


@pytest.fixture
def paged(tmp_path: Path, slack: tuple[FakeSlack, SlackSettings],
          monkeypatch: pytest.MonkeyPatch) -> Path:
    """A broken-pipeline replay with Slack configured: its page waits in the outbox."""
    return replay_into_db(tmp_path, "broken_pipeline", monkeypatch)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def posts(fake: FakeSlack) -> list[dict[str, Any]]:
    """Top-level messages (pages, digests): not replies in a thread."""
    return [b for m, b in fake.calls if m == "chat.postMessage" and not b.get("thread_ts")]


def replies(fake: FakeSlack) -> list[dict[str, Any]]:
    return [b for m, b in fake.calls if m == "chat.postMessage" and b.get("thread_ts")]


def notifier(db: Path, settings: SlackSettings, sleeps: list[float],
             timeout: int = 10) -> Notifier:
    return Notifier(SqlStore(str(db), migrate=False), slack_client(settings, timeout=timeout),
                    settings, sleep=sleeps.append)


def test_the_page_reaches_slack_once_with_its_buttons(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    # the page, and one thread reply per hour of event time in which its alerts repeated
    assert rows(paged, "SELECT kind, count(*), max(sent_at) FROM outbox GROUP BY kind "
                       "ORDER BY kind") == [("page", 1, None), ("thread", 2, None)]
    assert rows(paged, "SELECT dry_run, delivered FROM pages") == [(0, 0)]
    sleeps: list[float] = []
    report = notifier(paged, settings, sleeps).deliver_pending()
    assert (report.sent, report.failed, report.attempts) == (3, 0, 3)
    (body,) = posts(fake)
    assert fake.calls[0] == ("chat.postMessage", body)  # the page goes first
    assert body["channel"] == "#ml-oncall"
    page_ts = fake.answer("chat.postMessage", {})["ts"]  # (the fake numbers its messages)
    assert len(replies(fake)) == 2
    assert {r["thread_ts"] for r in replies(fake)} == {f"{int(float(page_ts)) - 3}.000100"}
    assert all(r["text"].startswith(":repeat: still firing") for r in replies(fake))
    actions = next(b for b in body["blocks"] if b["type"] == "actions")
    (alert_id,) = {e["value"] for e in actions["elements"]}
    assert [e["action_id"] for e in actions["elements"]] == [
        "acknowledge", "resolve", "silence", "not_actionable"]
    assert rows(paged, "SELECT alert_id, delivered FROM pages") == [(alert_id, 1)]
    assert rows(paged, "SELECT slack_channel FROM page_log") == [("C0PAGES",)]
    text = json.dumps(body["blocks"])
    assert "performance on car_loan" in text and "tolerance" in text
    again = notifier(paged, settings, sleeps).deliver_pending()
    assert (again.sent, len(fake.calls)) == (0, 3)  # a restart posts nothing twice


def test_rate_limits_server_errors_and_timeouts_are_retried_and_recorded(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    # a timeout whose call Slack never got: before posting again the notifier looks for it
    # by its metadata, finds nothing, and posts it once (one Slack did get is found and
    # recorded where it is, not posted again: tests/services/test_slack_faults.py)
    fake.faults.extend([Fault(429, retry_after=7), Fault(503), Fault(504, delay=2.5)])
    sleeps: list[float] = []
    report = notifier(paged, settings, sleeps, timeout=1).deliver_pending()
    assert (report.sent, report.attempts) == (3, 6)  # the page took 4 attempts
    assert sleeps == [7.0, 2.0, 4.0]  # Retry-After, then exponential backoff
    assert rows(paged, "SELECT attempts, last_error FROM outbox WHERE kind = 'page'") == [
        (4, None)]
    assert rows(paged, "SELECT d.ok, d.error FROM delivery_attempts d JOIN outbox o "
                       "ON o.message_id = d.message_id WHERE o.kind = 'page' ORDER BY d.id") == [
        (0, "rate limited (429)"), (0, "Slack error 503"),
        (0, "no answer from Slack: timed out"), (1, None)]
    time.sleep(2)  # the slow (failed) answer to the timed-out call comes and goes
    assert len(posts(fake)) == 1


def test_a_refused_call_is_recorded_and_not_retried(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    _, settings = slack
    wrong = settings.model_copy(update={"bot_token": SecretStr("xoxb-wrong")})
    report = notifier(paged, wrong, []).deliver_pending()
    # the page is refused; its thread replies wait for it, untried
    assert (report.sent, report.failed, report.attempts) == (0, 1, 1)
    assert rows(paged, "SELECT kind, attempts, last_error FROM outbox ORDER BY kind") == [
        ("page", 1, "Slack refused: invalid_auth"), ("thread", 0, None), ("thread", 0, None)]


def sign(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    base = b"v0:" + str(ts).encode() + b":" + body
    return {"X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base,
                                                  hashlib.sha256).hexdigest(),
            "Content-Type": "application/x-www-form-urlencoded"}


def interaction(fake: FakeSlack, action: str, user: str = "U0ONCALL") -> bytes:
    _, posted = fake.calls[0]
    answer = fake.answer("chat.postMessage", posted)  # what Slack shows: channel and ts
    alert_id = next(b for b in posted["blocks"] if b["type"] == "actions")["elements"][0][
        "value"]
    payload = {"type": "block_actions", "user": {"id": user},
               "actions": [{"action_id": action, "value": alert_id}],
               "container": {"channel_id": answer["channel"], "message_ts": answer["ts"]},
               "message": {"ts": answer["ts"], "blocks": posted["blocks"]}}
    return urlencode({"payload": json.dumps(payload)}).encode()


def post(db: Path, settings: SlackSettings, requests: list[tuple[bytes, dict[str, str]]],
         now: float = NOW) -> list[int]:
    app = build_api(SqlStore(str(db), migrate=False), SECRET,
                    slack_client(settings), clock=lambda: now)
    with TestClient(app) as client:
        return [client.post("/slack/interactions", content=body, headers=headers).status_code
                for body, headers in requests]


def test_a_signed_acknowledge_acknowledges_and_updates_the_message(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    notifier(paged, settings, []).deliver_pending()
    body = interaction(fake, "acknowledge")
    assert post(paged, settings, [(body, sign(body, int(NOW)))]) == [200]
    (alert,) = rows(paged, "SELECT a.status, a.acknowledged_by FROM alert_history a "
                           "JOIN pages p ON p.alert_id = a.alert_id")
    assert alert == ("acknowledged", "U0ONCALL")
    assert rows(paged, "SELECT action, actor FROM acknowledgements") == [
        ("acknowledge", "U0ONCALL")]
    method, update = fake.calls[-1]
    assert method == "chat.update" and update["channel"] == "C0PAGES"
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert "acknowledged by <@U0ONCALL>" in json.dumps(update["blocks"])


def test_acknowledgement_survives_triage_processing_the_alert_again(
    paged: Path, slack: tuple[FakeSlack, SlackSettings], tmp_path: Path,
) -> None:
    fake, settings = slack
    notifier(paged, settings, []).deliver_pending()
    body = interaction(fake, "acknowledge")
    post(paged, settings, [(body, sign(body, int(NOW)))])
    store = SqlStore(str(paged), migrate=False)
    triage = store.load_triage(TriagePolicy())
    (lead_id,) = {r[0] for r in rows(paged, "SELECT alert_id FROM pages")}
    lead = triage.alerts[lead_id]
    again = Signal(lead.model_id, Kind.PERFORMANCE, lead.subject, lead.statistic, 0.3,
                   lead.threshold, Window(0, 1, 0.0, 1.0, 2), {"drop": 0.5, "max_drop": 0.02},
                   lead.last_seen + 60, lead.last_seq + 1)
    store.apply(triage.process([again]), dry_run=False)
    assert rows(paged, f"SELECT status, acknowledged_by, occurrences FROM alert_history "
                       f"WHERE alert_id = '{lead_id}'") == [
        ("acknowledged", "U0ONCALL", lead.occurrences + 1)]


@pytest.mark.parametrize("case", ["wrong secret", "missing", "expired", "future", "tampered"])
def test_bad_signatures_are_refused_and_change_nothing(
    paged: Path, slack: tuple[FakeSlack, SlackSettings], case: str,
) -> None:
    fake, settings = slack
    notifier(paged, settings, []).deliver_pending()
    body = interaction(fake, "acknowledge")
    headers = {
        "wrong secret": sign(body, int(NOW), secret="not-the-secret"),
        "missing": {"Content-Type": "application/x-www-form-urlencoded"},
        "expired": sign(body, int(NOW) - 301),
        "future": sign(body, int(NOW) + 301),
        "tampered": sign(body.replace(b"acknowledge", b"resolve"), int(NOW)),
    }[case]
    before = rows(paged, "SELECT status, acknowledged_by FROM alert_history ORDER BY alert_id")
    calls = len(fake.calls)
    assert post(paged, settings, [(body, headers)]) == [401]
    assert rows(paged, "SELECT status, acknowledged_by FROM alert_history "
                       "ORDER BY alert_id") == before
    assert rows(paged, "SELECT count(*) FROM acknowledgements") == [(0,)]
    assert len(fake.calls) == calls


def test_a_replayed_request_is_refused(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    notifier(paged, settings, []).deliver_pending()
    body = interaction(fake, "not_actionable")
    headers = sign(body, int(NOW))
    assert post(paged, settings, [(body, headers), (body, headers)]) == [200, 401]
    assert rows(paged, "SELECT count(*) FROM feedback") == [(1,)]
    # another API process (a second replica) refuses it too
    assert post(paged, settings, [(body, headers)]) == [401]
    assert rows(paged, "SELECT count(*) FROM feedback") == [(1,)]


def test_not_actionable_lowers_the_score_until_it_stops_paging(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    notifier(paged, settings, []).deliver_pending()
    body = interaction(fake, "not_actionable")
    assert post(paged, settings, [(body, sign(body, int(NOW)))]) == [200]
    store = SqlStore(str(paged), migrate=False)
    triage = store.load_triage(TriagePolicy())
    (lead_id,) = {r[0] for r in rows(paged, "SELECT alert_id FROM pages")}
    lead = triage.alerts[lead_id]
    key = (lead.model_id, lead.kind, lead.subject)
    assert triage.feedback == Counter({key: 1})
    # the same kind of finding on the same model after it resolved: a new incident
    policy = TriagePolicy()
    scope = Scope(frozenset({Kind.PERFORMANCE}), lead.subject, lead.slice, lead.model_version)
    store.apply(triage.process([], [
        Evaluation(lead.model_id, scope, lead.last_seq + k, lead.last_seen + k)
        for k in range(1, policy.resolve_after_evaluations + policy.flap_window_evaluations + 2)
    ]), dry_run=False)
    later = Signal(lead.model_id, Kind.PERFORMANCE, lead.subject, lead.statistic, 0.5,
                   lead.threshold, Window(0, 1, 0.0, 1.0, 2),
                   {"drop": 0.35, "max_drop": 0.02}, lead.last_seen + 86_400,
                   lead.last_seq + 100)
    changes = triage.process([later])
    assert changes.pages == []
    store.apply(changes, dry_run=False)
    (new,) = [a for a in changes.alerts.values() if a.first_seq == later.seq]
    assert new.fingerprint == lead.fingerprint and new.alert_id != lead_id
    assert new.route.value == "digest"
    notes = [f.note for f in new.factors]
    assert "marked not actionable 1 time(s)" in notes  # the history says why
    fresh = Triage(TriagePolicy())  # without the feedback, the same finding pages
    assert len(fresh.process([later]).pages) == 1


# -- on call and escalation -----------------------------------------------------------------

ONCALL = OnCallSpec(timezone="Europe/Berlin", start=date(2030, 3, 4), handover=dtime(9, 0),
                    rotation=[Shift(primary="U0ALICE", secondary="U0BOB"),
                              Shift(primary="U0BOB", secondary="U0ALICE")],
                    ack_timeout_seconds=900)
MONDAY_10 = datetime(2030, 3, 11, 9, 0, tzinfo=UTC).timestamp()  # 10:00 Berlin, week 2


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_page_mentions_whoever_is_on_call_and_escalates_without_an_ack(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    n = Notifier(SqlStore(str(paged), migrate=False), slack_client(settings), settings,
                 oncall=ONCALL, sleep=lambda _: None, clock=clock)
    assert n.deliver_pending().sent == 3  # the page and its thread replies
    first = posts(fake)[-1]
    assert first["text"].startswith("<@U0BOB> ")  # week 2 of the rotation: Bob
    clock.now += 899
    assert n.escalate() == 0  # the SLA has not run out
    clock.now += 2
    assert n.escalate() == 1
    assert n.deliver_pending().sent == 1
    second = posts(fake)[-1]
    assert second["text"].startswith("<@U0ALICE> ") and "escalated, level 1" in second["text"]
    clock.now += 901
    assert n.escalate() == 1 and n.deliver_pending().sent == 1
    assert posts(fake)[-1]["text"].startswith("<!channel> ")
    clock.now += 901
    assert n.escalate() == 0  # the channel was the last level
    assert rows(paged, "SELECT escalation_level, delivered FROM pages "
                       "ORDER BY escalation_level") == [(0, 1), (1, 1), (2, 1)]


def test_an_acknowledged_page_does_not_escalate(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    n = Notifier(SqlStore(str(paged), migrate=False), slack_client(settings), settings,
                 oncall=ONCALL, sleep=lambda _: None, clock=clock)
    n.deliver_pending()
    assert posts(fake)[-1]["text"].startswith("<@U0BOB> ")
    body = interaction(fake, "acknowledge", user="U0BOB")
    assert post(paged, settings, [(body, sign(body, int(MONDAY_10) + 60))],
                now=MONDAY_10 + 60) == [200]
    assert rows(paged, "SELECT status, acknowledged_by FROM alert_history a JOIN pages p "
                       "ON p.alert_id = a.alert_id") == [("acknowledged", "U0BOB")]
    clock.now += 3600
    assert n.escalate() == 0
    assert rows(paged, "SELECT escalation_level FROM pages") == [(0,)]
    assert len(posts(fake)) == 1 and [m for m, _ in fake.calls][-1] == "chat.update"


# -- digest ---------------------------------------------------------------------------------


@pytest.fixture
def digested(tmp_path: Path, slack: tuple[FakeSlack, SlackSettings],
             monkeypatch: pytest.MonkeyPatch) -> Path:
    """A benign-drift replay: an incident routed to the digest, no page."""
    db = replay_into_db(tmp_path, "benign_drift", monkeypatch)
    assert rows(db, "SELECT route, paged_at FROM incidents") == [("digest", None)]
    return db


def test_the_digest_collects_what_did_not_page_once_per_period(
    digested: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    n = Notifier(SqlStore(str(digested), migrate=False), slack_client(settings), settings,
                 sleep=lambda _: None, clock=clock)
    assert n.deliver_pending().sent == 0  # nothing paged
    assert n.send_digest(24 * 3600) == 1
    (method, body), = fake.calls
    assert method == "chat.postMessage" and body["channel"] == "#ml-oncall"
    assert "digest: 1 finding(s)" in body["text"] and "promo_score" in body["text"]
    clock.now += 3600
    assert n.send_digest(24 * 3600) == 0 and len(fake.calls) == 1  # not due yet
    clock.now += 24 * 3600
    assert n.send_digest(24 * 3600) == 0 and len(fake.calls) == 1  # due, nothing new


def test_a_digest_that_fails_is_sent_later_with_nothing_lost(
    digested: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    n = Notifier(SqlStore(str(digested), migrate=False), slack_client(settings), settings,
                 sleep=lambda _: None, clock=clock)
    fake.faults.append(Fault(500))
    assert n.send_digest(3600) == 0 and fake.calls == []
    clock.now += 60
    assert n.send_digest(3600) == 1
    assert "promo_score" in fake.calls[0][1]["text"]


def test_a_late_finding_goes_out_in_the_next_digest(
    digested: Path, slack: tuple[FakeSlack, SlackSettings],
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    store = SqlStore(str(digested), migrate=False)
    n = Notifier(store, slack_client(settings), settings, sleep=lambda _: None, clock=clock)
    assert n.send_digest(3600) == 1
    # a finding whose event time is older than the digest just sent (late labels, say)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO incidents (incident_id, model_id, status, severity, route, opened_at,"
            " updated_at, summary, factors, alert_ids) VALUES ('late', 'car_loan', 'open', "
            "0.3, 'digest', '2019-03-01 00:00:00', '2019-03-01 00:00:00', 'late drift', "
            "'[]', '[]')")
    clock.now += 3601
    assert n.send_digest(3600) == 1
    assert "late drift" in fake.calls[-1][1]["text"]
    clock.now += 3601
    assert n.send_digest(3600) == 0  # each finding goes out once
