"""Delivery edge cases found in review: failed escalations, silences after an
acknowledgement, resolves before their page is out, bad rows, infinite evidence."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from alerts.model import Status
from alerts.store.sql import SqlStore, json_dumps
from alerts.triage import Changes
from config.file import TriagePolicy
from config.settings import SlackSettings
from services.notifier import Notifier, slack_client
from tests.fakes.slack import FakeSlack, Fault
from tests.services.test_slack_flow import (  # noqa: F401 - fixtures
    MONDAY_10,
    ONCALL,
    Clock,
    interaction,
    paged,
    post,
    posts,
    sign,
    slack,
)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def make(db: Path, settings: SlackSettings, clock: Clock, **kw: Any) -> Notifier:
    return Notifier(SqlStore(str(db), migrate=False), slack_client(settings), settings,
                    oncall=ONCALL, sleep=lambda _: None, clock=clock, **kw)


def test_an_escalation_that_cannot_be_delivered_does_not_crash_or_repeat(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],  # noqa: F811
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    n = make(paged, settings, clock, max_attempts=2)
    n.deliver_pending()
    clock.now += 901
    assert n.escalate() == 1
    fake.faults.extend([Fault(500), Fault(500)])
    n.deliver_pending()  # level 1 fails twice: still pending
    clock.now += 901
    assert n.escalate() == 0  # waits for level 1 to go out; no duplicate row, no crash
    assert rows(paged, "SELECT escalation_level, delivered FROM pages ORDER BY 1") == [
        (0, 1), (1, 0)]


def test_any_button_stops_escalation(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],  # noqa: F811
) -> None:
    fake, settings = slack
    clock = Clock(MONDAY_10)
    n = make(paged, settings, clock)
    n.deliver_pending()
    body = interaction(fake, "not_actionable", user="U0BOB")
    assert post(paged, settings, [(body, sign(body, int(MONDAY_10)))], now=MONDAY_10) == [200]
    clock.now += 3600
    assert n.escalate() == 0


def test_an_acknowledgement_survives_triage_silencing_the_alert(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],  # noqa: F811
) -> None:
    fake, settings = slack
    make(paged, settings, Clock(MONDAY_10)).deliver_pending()
    body = interaction(fake, "acknowledge")
    post(paged, settings, [(body, sign(body, int(MONDAY_10)))], now=MONDAY_10)
    store = SqlStore(str(paged), migrate=False)
    triage = store.load_triage(TriagePolicy())
    (lead_id,) = {r[0] for r in rows(paged, "SELECT alert_id FROM pages")}
    silenced = replace(triage.alerts[lead_id], status=Status.SILENCED, silenced_by="s1")
    store.apply(Changes(alerts={lead_id: silenced}), dry_run=False)
    assert rows(paged, f"SELECT status FROM alert_history WHERE alert_id = '{lead_id}'") == [
        ("acknowledged",)]


def test_a_resolve_waits_for_its_page_and_updates_it_and_its_escalations(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],  # noqa: F811
) -> None:
    fake, settings = slack
    store = SqlStore(str(paged), migrate=False)
    incident = rows(paged, "SELECT incident_id FROM pages")[0][0]
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (message_id, kind, incident_id, payload, created_at, attempts) "
            f"VALUES ('r1', 'resolve', '{incident}', '{{}}', '2000-01-01', 0)")
    fake.faults.extend([Fault(500)] * 2)
    n = make(paged, settings, Clock(MONDAY_10), max_attempts=2)
    n.deliver_pending()  # the page fails: the resolve must wait, not be used up
    assert rows(paged, "SELECT sent_at FROM outbox WHERE message_id = 'r1'") == [(None,)]
    n.deliver_pending()
    assert rows(paged, "SELECT sent_at IS NOT NULL FROM outbox WHERE message_id = 'r1'") == [
        (1,)]
    assert [m for m, _ in fake.calls if m == "chat.update"] == ["chat.update"]
    assert len(posts(fake)) == 1


def test_a_broken_row_is_recorded_and_does_not_block_the_others(
    paged: Path, slack: tuple[FakeSlack, SlackSettings],  # noqa: F811
) -> None:
    _, settings = slack
    store = SqlStore(str(paged), migrate=False)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (message_id, kind, page_id, payload, created_at, attempts) "
            "VALUES ('bad', 'page', 'no-such-page', '{}', '1999-01-01', 0)")
    report = make(paged, settings, Clock(MONDAY_10)).deliver_pending()
    assert report.failed == 1 and report.sent == 3
    (error,) = rows(paged, "SELECT last_error FROM outbox WHERE message_id = 'bad'")[0]
    assert error.startswith("cannot deliver: NoResultFound")


def test_infinite_evidence_is_stored_as_null() -> None:
    assert json_dumps({"z": float("inf"), "n": [float("-inf")]}) == '{"z": null, "n": [null]}'
