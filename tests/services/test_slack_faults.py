"""Slack failing, against the local fake over real HTTP: 429 with Retry-After, a minute of
500s, timeouts whose post landed and timeouts whose post did not, failed lookups and a mix
of all of them. Afterwards every page (and thread reply) is in Slack exactly once, and the
alert store says where (channel id and ts)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.store import DeliveryStore
from alerts.store.sql import SqlStore
from config.errors import RetryableError
from config.settings import SlackSettings
from services.health import Readiness
from services.notifier import LOOKUP_MARGIN, Notifier, Report, run_notifier, slack_client
from sim.scenarios import generate, write_scenario
from tests.fakes.slack import FakeSlack, Fault
from watchkeeper.cli import main

TIMEOUT = 0.3  # the client's: a late answer comes after LATE seconds
LATE = 0.8
START = 1_900_000_000.0
POST = "chat.postMessage"
HISTORY = "conversations.history"


class Clock:
    """The notifier's and the fake's time: moved by the notifier's waits and the test."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A broken-pipeline replay with Slack configured: a page and two thread replies wait
    in the outbox."""
    folder = tmp_path_factory.mktemp("faults")
    files = write_scenario(generate("broken_pipeline", predictions=5_000, seed=7),
                           folder / "broken_pipeline.jsonl")
    db = folder / "wk.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("WATCHKEEPER_SLACK_BOT_TOKEN", "xoxb-test")
        assert main(["replay", str(files.events), "--config", str(files.config), "--db",
                     str(db), "-q"]) == 0
    return db


def copy_db(template: Path, folder: Path, more_pages: int = 0) -> Path:
    """The template's database, with ``more_pages`` pages of incidents like its own (each
    its own incident and outbox message)."""
    db = folder / "wk.db"
    shutil.copy(template, db)
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        page = dict(conn.execute("SELECT * FROM page_log").fetchone())
        incident = dict(conn.execute("SELECT * FROM incidents WHERE incident_id = ?",
                                     (page["incident_id"],)).fetchone())
        message = dict(conn.execute("SELECT * FROM outbox WHERE kind = 'page'").fetchone())
        for k in range(more_pages):
            copies = [("incidents", {**incident, "incident_id": f"incident-{k}"}),
                      ("page_log", {**page, "page_id": f"page-{k}",
                                    "incident_id": f"incident-{k}"}),
                      ("outbox", {**message, "message_id": f"page-{k}", "page_id": f"page-{k}",
                                  "incident_id": f"incident-{k}"})]
            for table, row in copies:
                conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES "
                             f"({', '.join('?' * len(row))})", list(row.values()))
    return db


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeSlack]:
    slack = FakeSlack(clock=clock)
    slack.start()
    yield slack
    slack.stop()


def notifier(db: Path, fake: FakeSlack, clock: Clock, **kw: Any) -> Notifier:
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "api_url": fake.url})
    return Notifier(SqlStore(str(db), migrate=False), slack_client(settings, timeout=TIMEOUT),
                    settings, sleep=clock.sleep, clock=clock, **kw)


def held(fake: FakeSlack) -> Counter[str]:
    """How many messages the fake's channel holds per outbox id (their metadata)."""
    return Counter(m["metadata"]["event_payload"]["outbox_id"] for m in fake.posted())


def methods(fake: FakeSlack) -> list[str]:
    return [m for m, _ in fake.calls]


def outbox_ids(db: Path) -> set[str]:
    return {r[0] for r in rows(db, "SELECT message_id FROM outbox")}


def assert_recorded_where_slack_has_them(db: Path, fake: FakeSlack) -> None:
    """Every message sent once; every page's channel and ts are those of its message."""
    assert held(fake) == Counter(outbox_ids(db))
    assert rows(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
    ts = {m["metadata"]["event_payload"]["outbox_id"]: m["ts"] for m in fake.posted()}
    assert {(page_id, channel, stamp) for page_id, channel, stamp in rows(
        db, "SELECT page_id, slack_channel, slack_ts FROM page_log")} == {
        (page_id, "C0PAGES", ts[page_id]) for page_id, in rows(db,
                                                               "SELECT page_id FROM page_log")}


def attempts(db: Path, message_id: str) -> list[tuple[int, str | None]]:
    return rows(db, "SELECT ok, error FROM delivery_attempts WHERE message_id = "
                    f"'{message_id}' ORDER BY id")


def page_id(db: Path) -> str:
    return str(rows(db, "SELECT page_id FROM page_log")[0][0])


# -- every post carries its outbox id -------------------------------------------------------


def test_every_post_carries_its_outbox_id_in_its_metadata(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    assert notifier(db, fake, clock).deliver_pending().sent == 3
    assert [(m["metadata"]["event_type"], m.get("thread_ts") is not None)
            for m in fake.posted()] == [("watchkeeper_page_posted", False),
                                        ("watchkeeper_thread_reply_posted", True),
                                        ("watchkeeper_thread_reply_posted", True)]
    assert_recorded_where_slack_has_them(db, fake)
    assert methods(fake) == [POST] * 3  # no lookups when every answer came


# -- 429 ------------------------------------------------------------------------------------


def test_a_429_waits_as_retry_after_says_then_posts_once(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.append(Fault(429, retry_after=30, method=POST))
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.attempts, report.found) == (3, 4, 0)
    assert clock.waits == [30.0]
    assert attempts(db, page_id(db)) == [(0, "rate limited (429)"), (1, None)]
    assert methods(fake) == [POST] * 3  # a 429 is no unknown outcome: nothing looked up
    assert_recorded_where_slack_has_them(db, fake)


def test_retry_after_holds_past_the_end_of_a_pass(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.extend([Fault(429, retry_after=20, method=POST)] * 2)
    n = notifier(db, fake, clock, max_attempts=2)
    first = n.deliver_pending()
    assert (first.sent, first.failed, first.attempts) == (0, 1, 2)
    assert clock.waits == [20.0]  # the second 429 ends the pass: its wait is kept
    clock.now += 19
    early = n.deliver_pending()
    assert (early.attempts, len(fake.calls)) == (0, 0)  # Slack is not called before then
    assert n.send_digest(3600) == 0 and len(fake.calls) == 0
    clock.now += 1
    assert n.deliver_pending().sent == 3
    assert_recorded_where_slack_has_them(db, fake)


# -- a minute of 500s -----------------------------------------------------------------------


def test_a_minute_of_500s_loses_nothing_and_repeats_nothing(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path, more_pages=3)
    fake.down_until = START + 60
    n = notifier(db, fake, clock, max_attempts=3)
    passes: list[Report] = []
    while rows(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") != [(0,)]:
        assert len(passes) < 20
        passes.append(n.deliver_pending())
        clock.now += 5  # the run loop's interval
    # down: the first message uses its 3 attempts (waits 1 s, 2 s), the next one gets one,
    # and the pass ends there; the others keep their place and their attempts
    down = [(r.sent, r.failed, r.attempts) for r in passes[:-1]]
    assert down == [(0, 2, 4)] * 8
    assert clock.waits == [1.0, 2.0] * 8
    last = passes[-1]
    assert (last.sent, last.failed, last.attempts) == (6, 0, 6)  # 4 pages, 2 replies
    assert methods(fake) == [POST] * 6  # what Slack took: each message once
    assert_recorded_where_slack_has_them(db, fake)
    # the head took the brunt; the next one a probe a pass; the others nothing till then
    assert sorted(rows(db, "SELECT kind, attempts FROM outbox")) == [
        ("page", 1), ("page", 1), ("page", 9), ("page", 25), ("thread", 1), ("thread", 1)]


def test_a_page_is_never_given_up_while_slack_is_down(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    pid = page_id(db)
    with sqlite3.connect(db) as conn:  # an hour-long outage's worth of failed attempts
        conn.executemany("INSERT INTO delivery_attempts (message_id, attempted_at, ok, error)"
                         " VALUES (?, '2030-01-01 00:00:00', 0, 'Slack error 503')",
                         [(pid,)] * 300)
        conn.execute("UPDATE outbox SET attempts = 300 WHERE message_id = ?", (pid,))
    assert notifier(db, fake, clock).deliver_pending().sent == 3
    assert_recorded_where_slack_has_them(db, fake)


def test_a_page_slack_keeps_refusing_is_left_for_a_person(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    pid = page_id(db)
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO delivery_attempts (message_id, attempted_at, ok, error)"
                         " VALUES (?, '2030-01-01 00:00:00', 0, 'Slack refused: x')",
                         [(pid,)] * 50)
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.attempts, fake.calls) == (0, 0, [])


# -- timeouts -------------------------------------------------------------------------------


def test_a_timed_out_post_that_landed_is_found_not_posted_again(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.append(Fault(lands=True, delay=LATE, method=POST))
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.found, report.attempts) == (3, 1, 4)
    assert methods(fake) == [POST, "conversations.list", HISTORY, POST, POST]
    history = dict(fake.calls)[HISTORY]
    assert (history["channel"], history["include_all_metadata"], float(history["oldest"])) == (
        "C0PAGES", "1", START - LOOKUP_MARGIN)
    assert attempts(db, page_id(db)) == [(0, "no answer from Slack: timed out"), (1, None)]
    assert_recorded_where_slack_has_them(db, fake)
    # the thread replies went under the page's ts, the one Slack has
    (page,) = [m for m in fake.posted() if "thread_ts" not in m]
    assert {m["thread_ts"] for m in fake.posted() if "thread_ts" in m} == {page["ts"]}


def test_a_restart_after_a_timeout_looks_before_posting(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.append(Fault(lands=True, delay=LATE, method=POST))
    before = notifier(db, fake, clock, max_attempts=1).deliver_pending()
    assert (before.sent, before.failed) == (0, 1)  # the page timed out; its replies wait
    clock.now += 3600
    after = notifier(db, fake, clock).deliver_pending()  # a new process: no memory
    assert (after.sent, after.found) == (3, 1)
    assert methods(fake) == [POST, "conversations.list", HISTORY, POST, POST]
    assert float(dict(fake.calls)[HISTORY]["oldest"]) == START - LOOKUP_MARGIN
    assert_recorded_where_slack_has_them(db, fake)


def test_a_timed_out_thread_reply_that_landed_is_found_in_its_thread(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.extend([Fault(lands=True, method=POST),  # the page: answered at once
                        Fault(lands=True, delay=LATE, method=POST)])
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.found) == (3, 1)
    assert methods(fake) == [POST, POST, "conversations.replies", POST]
    replies = dict(fake.calls)["conversations.replies"]
    (page,) = [m for m in fake.posted() if "thread_ts" not in m]
    assert (replies["channel"], replies["ts"]) == ("C0PAGES", page["ts"])
    assert_recorded_where_slack_has_them(db, fake)


def test_a_timed_out_post_that_did_not_land_is_posted_once_on_retry(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.append(Fault(503, delay=LATE, method=POST))  # a slow failure
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.found, report.attempts) == (3, 0, 4)
    # (the fake keeps the calls it served: the slow failure is not among them)
    assert methods(fake) == ["conversations.list", HISTORY, POST, POST, POST]
    assert clock.waits == [1.0]
    assert attempts(db, page_id(db)) == [(0, "no answer from Slack: timed out"), (1, None)]
    assert_recorded_where_slack_has_them(db, fake)


def test_nothing_is_posted_while_the_lookup_fails(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.faults.extend([Fault(lands=True, delay=LATE, method=POST),
                        Fault(500, method=HISTORY), Fault(500, method=HISTORY)])
    n = notifier(db, fake, clock, max_attempts=3)
    first = n.deliver_pending()
    assert (first.sent, first.failed, first.attempts) == (0, 1, 3)
    assert attempts(db, page_id(db)) == [(0, "no answer from Slack: timed out"),
                                         (0, "lookup: Slack error 500"),
                                         (0, "lookup: Slack error 500")]
    assert held(fake) == Counter({page_id(db): 1})  # the one that landed, not posted again
    second = n.deliver_pending()
    assert (second.sent, second.found) == (3, 1)
    assert_recorded_where_slack_has_them(db, fake)


def test_channel_names_are_resolved_with_bounded_paging_and_cached(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path, more_pages=1)
    fake.channels = {**{f"C{k:07d}": f"team-{k}" for k in range(450)}, "C0PAGES": "ml-oncall"}
    fake.faults.extend([Fault(lands=True, delay=LATE, method=POST)] * 2)  # both pages
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.found) == (4, 2)
    # 451 channels, 200 a page: three pages, once (the second lookup uses the cache)
    assert methods(fake).count("conversations.list") == 3
    assert [b.get("limit") for m, b in fake.calls if m == "conversations.list"] == ["200"] * 3
    assert methods(fake).count(HISTORY) == 2
    assert_recorded_where_slack_has_them(db, fake)


def test_a_lookup_that_cannot_finish_in_its_bound_posts_nothing(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    fake.channels = {**{f"C{k:07d}": f"team-{k}" for k in range(1200)}, "C0PAGES": "ml-oncall"}
    fake.faults.append(Fault(lands=True, delay=LATE, method=POST))
    report = notifier(db, fake, clock).deliver_pending()
    assert (report.sent, report.failed) == (0, 1)
    assert attempts(db, page_id(db))[-1] == (
        0, "lookup: more than 1000 channels to read: cannot tell")
    assert methods(fake).count("conversations.list") == 5
    assert held(fake) == Counter({page_id(db): 1})


def test_a_timed_out_digest_that_landed_is_not_posted_again(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    db = copy_db(template, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE incidents SET route = 'digest', paged_at = NULL")
        conn.execute("DELETE FROM outbox")  # (a digest needs no page)
    fake.faults.append(Fault(lands=True, delay=LATE, method=POST))
    n = notifier(db, fake, clock)
    assert n.send_digest(3600) == 0  # no answer: not marked digested yet
    assert n.send_digest(3600) == 0  # found: marked digested, nothing left to post
    assert [m["metadata"]["event_type"] for m in fake.posted()] == [
        "watchkeeper_digest_posted"]
    assert methods(fake) == [POST, "conversations.list", HISTORY]
    assert rows(db, "SELECT count(*) FROM incidents WHERE digested_at IS NULL") == [(0,)]


# -- a mix of everything --------------------------------------------------------------------

KINDS = {
    "ok": lambda: Fault(lands=True),
    "429": lambda: Fault(429, retry_after=2),
    "500": lambda: Fault(500),
    "slow 503": lambda: Fault(503, delay=LATE),  # a timeout; it did not land
    "late": lambda: Fault(lands=True, delay=LATE),  # a timeout; it landed
}


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(pages=st.integers(0, 3),
       posts=st.lists(st.sampled_from(sorted(KINDS)), max_size=6),
       lookups=st.lists(st.sampled_from(["500", "slow 503", "429"]), max_size=2))
def test_after_any_mix_of_failures_each_message_is_in_slack_once(
    template: Path, pages: int, posts: list[str], lookups: list[str],
) -> None:
    clock = Clock(START)
    fake = FakeSlack(clock=clock)
    url = fake.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            db = copy_db(template, Path(folder), more_pages=pages)
            fake.faults.extend([KINDS[k]() for k in posts])
            for kind in lookups:
                fault = KINDS[kind]()
                fault.method = HISTORY
                fake.faults.append(fault)
            settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "api_url": url})
            n = Notifier(SqlStore(str(db), migrate=False),
                         slack_client(settings, timeout=TIMEOUT), settings,
                         sleep=clock.sleep, clock=clock, max_attempts=2)
            for _ in range(12):  # passes of the run loop
                n.deliver_pending()
                clock.now += 5
            assert_recorded_where_slack_has_them(db, fake)
            assert [f for f in fake.faults if f.method is None] == []  # all were met
    finally:
        fake.stop()


class DatabaseAway:
    """The notifier's store with its database away: ``away`` calls from the ``after``-th
    (of any method) raise RetryableError, as SqlStore does when the server is refused."""

    def __init__(self, store: SqlStore, *, after: int, away: int) -> None:
        self.store, self.after, self.away = store, after, away
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.after <= self.calls < self.after + self.away:
                raise RetryableError("the database is unavailable: connection refused")
            return method(*args, **kwargs)

        return call


@pytest.mark.parametrize("after", [1, 4, 6, 9])
def test_the_database_away_mid_round_delays_delivery_and_posts_nothing_twice(
    template: Path, tmp_path: Path, after: int,
) -> None:
    """Wherever in a round the database goes (before a post, after Slack took one but
    before it was recorded), the notifier backs off, says it is not ready, and once the
    database answers every message is in Slack once and recorded where it is."""
    db = copy_db(template, tmp_path, more_pages=2)
    slack = FakeSlack()
    slack.start()
    try:
        settings = SlackSettings.model_validate({"bot_token": "xoxb-test",
                                                 "api_url": slack.url})
        store = DatabaseAway(SqlStore(str(db), migrate=False), after=after, away=5)
        readiness, waits, seen = Readiness(), [], []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            seen.append(readiness.ready)

        report = run_notifier(cast(DeliveryStore, store), settings, once=False,
                              interval=5.0, readiness=readiness, sleep=sleep, rounds=8)
        assert readiness.ready and seen[0] is False  # not ready while it was away
        assert waits[:2] == [0.5, 1.0]  # the backoff, then the interval once back
        assert 5.0 in waits
        outbox = {m for (m,) in rows(db, "SELECT message_id FROM outbox")}
        assert held(slack) == Counter({m: 1 for m in outbox})
        assert rows(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
        posted = {ts for (ts,) in rows(db, "SELECT slack_ts FROM page_log")}
        assert posted == {m["ts"] for m in slack.posted() if m.get("thread_ts") is None}
        assert report.sent == len(outbox)
    finally:
        slack.stop()


class RecordFails:
    """The store, with its database away for the first ``times`` records of an attempt."""

    def __init__(self, store: SqlStore, times: int = 1) -> None:
        self.store, self.times = store, times

    def record_attempt(self, *args: Any, **kwargs: Any) -> None:
        if self.times > 0:
            self.times -= 1
            raise RetryableError("the database is unavailable: connection refused")
        self.store.record_attempt(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_an_unanswered_post_whose_record_failed_is_looked_up_not_posted_again(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    """The post timed out (it landed) and the database could not take the attempt's record:
    the notifier remembers the attempt went unanswered, and looks before posting again."""
    db = copy_db(template, tmp_path)
    fake.faults.append(Fault(lands=True, delay=LATE, method=POST))
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "api_url": fake.url})
    n = Notifier(cast(DeliveryStore, RecordFails(SqlStore(str(db), migrate=False))),
                 slack_client(settings, timeout=TIMEOUT), settings, sleep=clock.sleep,
                 clock=clock)
    with pytest.raises(RetryableError):
        n.deliver_pending()
    report = n.deliver_pending()
    assert report.found == 1
    outbox = {m for (m,) in rows(db, "SELECT message_id FROM outbox")}
    assert held(fake) == Counter({m: 1 for m in outbox})
    assert_recorded_where_slack_has_them(db, fake)


def test_a_busy_channel_does_not_push_an_unanswered_post_out_of_reach(
    template: Path, tmp_path: Path, fake: FakeSlack, clock: Clock,
) -> None:
    """The lookup reads the channel around the unanswered attempts only: 1,200 messages
    posted an hour later (more than it reads) do not hide the page."""
    db = copy_db(template, tmp_path)
    fake.faults.append(Fault(lands=True, delay=LATE, method=POST))
    fake.faults.append(Fault(status=500, method=HISTORY))  # the first lookup fails
    n = notifier(db, fake, clock, max_attempts=2)
    assert n.deliver_pending().sent == 0
    later = clock.now + 3_600
    fake.messages["C0PAGES"] += [{"ts": f"{later + k:.6f}", "text": "chatter", "user": "U1"}
                                 for k in range(1_200)]
    clock.now = later + 1_300
    report = n.deliver_pending()
    assert report.found == 1
    history = [args for method, args in fake.calls if method == HISTORY][-1]
    assert (float(history["oldest"]), float(history["latest"])) == (
        START - LOOKUP_MARGIN, START + LOOKUP_MARGIN)
    outbox = {m for (m,) in rows(db, "SELECT message_id FROM outbox")}
    ours = Counter(m["metadata"]["event_payload"]["outbox_id"] for m in fake.posted()
                   if "metadata" in m)
    assert ours == Counter({m: 1 for m in outbox})
