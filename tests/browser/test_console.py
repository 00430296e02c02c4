"""On-call's path in a real browser: the Slack page's "Open the alert" link, sign in,
Acknowledge; the state changes on the page and in SQL. And the model-health page draws
the replay's incident on its charts. Screenshots of both pages are kept (artifacts/)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from alerts.store.sql import SqlStore
from services.slack_blocks import page_message
from tests.browser.conftest import TOKEN, Console


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def open_link(console: Console) -> str:
    """The "Open the alert" URL of the replay's page, as Slack shows it."""
    ((page_id,),) = rows(console.db, "SELECT page_id FROM page_log")
    store = SqlStore(str(console.db), migrate=False)
    try:
        page, lead = store.page_content(page_id)
    finally:
        store.close()
    _, blocks = page_message(page, lead, console.url)
    (url,) = re.findall(r"<([^|>]+)\|Open the alert>", str(blocks))
    return str(url)


def new_page(browser: Browser, problems: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900})

    def console_message(msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):  # CSP violations are reported here
            problems.append(msg.text)

    page.on("console", console_message)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page


def sign_in(page: Page, name: str = "alice") -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=token]", TOKEN)
    page.click("button:has-text('Sign in')")


def test_open_the_alert_sign_in_and_acknowledge(browser: Browser, console: Console,
                                                artifacts: Path) -> None:
    link = open_link(console)
    alert_id = link.rsplit("/", 1)[1]
    assert link == f"{console.url}/alerts/{alert_id}"
    problems: list[str] = []
    page = new_page(browser, problems)
    page.goto(link)
    assert page.url.startswith(f"{console.url}/login?next=")  # nobody signed in yet
    sign_in(page)
    page.wait_for_url(link)  # back where the link pointed
    expect(page.locator("h1")).to_contain_text("performance on")
    expect(page.locator("#alert-status")).to_have_text("open")
    expect(page.locator("[data-chart=occurrences] canvas").first).to_be_visible()
    assert rows(console.db, f"SELECT status, acknowledged_by FROM alert_history "
                            f"WHERE alert_id = '{alert_id}'") == [("open", None)]

    page.click("button:has-text('Acknowledge')")
    page.wait_for_url(f"{link}?done=acknowledge")
    expect(page.locator(".notice.good")).to_have_text("Acknowledged by alice.")
    expect(page.locator("#alert-status")).to_contain_text("acknowledged by alice at")
    expect(page.locator("#actions-log tbody tr")).to_have_count(1)
    expect(page.locator("#actions-log tbody")).to_contain_text("acknowledge")
    assert rows(console.db, f"SELECT status, acknowledged_by FROM alert_history "
                            f"WHERE alert_id = '{alert_id}'") == [("acknowledged", "alice")]
    assert rows(console.db, "SELECT alert_id, action, actor FROM acknowledgements") == [
        (alert_id, "acknowledge", "alice")]
    page.screenshot(path=str(artifacts / "alert.png"), full_page=True)
    assert problems == []  # no CSP violation, no script error, no missing file


def test_model_health_draws_the_incident(browser: Browser, console: Console,
                                         artifacts: Path) -> None:
    ((model_id, alerts),) = rows(console.db, "SELECT model_id, count(*) FROM alerts "
                                             "GROUP BY model_id")
    problems: list[str] = []
    page = new_page(browser, problems)
    page.goto(f"{console.url}/models/{model_id}")
    sign_in(page, "bob")
    page.wait_for_url(f"{console.url}/models/{model_id}")
    charts = page.locator("figure [data-chart]")
    expected = rows(console.db, "SELECT count(DISTINCT fingerprint) FROM statistic_snapshots "
                                "WHERE kind NOT IN ('performance')")[0][0] + rows(
        console.db, "SELECT count(DISTINCT coalesce(slice, '') || '|' || "
                    "coalesce(model_version, '')) FROM statistic_snapshots "
                    "WHERE kind = 'performance'")[0][0]
    expect(charts).to_have_count(expected)
    expect(page.locator("figure .uplot")).to_have_count(expected)  # each one drawn
    overall = page.locator("figure", has_text="accuracy: overall")
    expect(overall.locator("canvas")).to_be_visible()
    expect(overall).to_contain_text("tolerance line")
    expect(page.locator("section", has_text="Alerts in this range").locator(
        "tbody tr")).to_have_count(alerts)
    page.screenshot(path=str(artifacts / "model-health.png"), full_page=True)
    assert problems == []
