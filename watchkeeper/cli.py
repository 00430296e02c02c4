"""The ``watchkeeper`` command line (CONTRACT §3).

Exit codes: 0 success (rejected events are counted, not fatal); 2 an unreadable input or
an invalid configuration, with one line on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from alerts.actions import Action
from alerts.model import Incident, Page, Status
from alerts.store.schema import database_url, migrate, redact
from alerts.store.sql import QueryError, SqlStore, open_store
from alerts.triage import Triage
from config.errors import ConfigError, InputError, RetryableError
from config.file import load_config
from config.settings import SecretName, Settings, database_dsn, load_settings, variable
from services.pipeline import Pipeline
from services.replay import ReplayReport, replay
from stream.events import Reject
from stream.signals import Kind, Signal, iso
from stream.topics import Topics
from watchkeeper.runtime import tune_gc

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"watchkeeper: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _weak(settings: Settings, args: argparse.Namespace, db: str,
          *secrets: SecretName) -> str | None:
    """Outside development, why a server command must not start with these secrets and
    this database (one line naming the variable), or None."""
    return settings.weak_secret(secrets, db, "--db" if args.db else "WATCHKEEPER_DATABASE_URL")


def _unavailable(exc: Exception) -> int:
    """A service (database, broker) that cannot be reached now: exit 1, one line."""
    print(f"watchkeeper: error: {exc}", file=sys.stderr)
    return EXIT_UNAVAILABLE


class _Progress:
    """A progress bar on stderr for long files, only when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self._bar: Any = None
        if sys.stderr.isatty() and total > 0:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), transient=True)
            self._task = self._bar.add_task(label, total=total)
            self._bar.start()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _RejectsFile:
    """Keeps rejected events as JSON Lines: index, reason, detail and the original bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self.count = 0

    def write(self, seq: int, reject: Reject) -> None:
        if self._fh is None:
            self._fh = self.path.open("wb")
        record: dict[str, Any] = {"seq": seq, "reason": str(reject.reason),
                                  "detail": reject.detail, "batch_index": reject.index}
        try:
            record["raw"] = reject.raw.decode("utf-8")
        except UnicodeDecodeError:
            record["raw_base64"] = base64.b64encode(reject.raw).decode("ascii")
        self._fh.write(json.dumps(record).encode() + b"\n")
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


DEFAULT_DB = "sqlite:///watchkeeper.db"  # replay's and demo's embedded default
NO_DATABASE = ("no database: set WATCHKEEPER_DATABASE_URL or pass --db "
               "(postgresql://user@host:port/db, or an SQLite file)")


def format_page(page: Page, *, dry_run: bool) -> str:
    tag = "PAGE (dry run)" if dry_run else "PAGE"
    return (f"{tag} {page.channel} at {iso(page.paged_at)} (event {page.seq}), "
            f"severity {page.severity:.2f}: {page.summary}")


def run_replay(
    events: Path, config_path: Path, *, db: str = DEFAULT_DB,
    signals_out: Path | None = None, rejects_out: Path | None = None,
    report_out: Path | None = None, quiet: bool = False, out: IO[str] | None = None,
    dry_run: bool = True,
) -> tuple[ReplayReport, Pipeline]:
    """Replay a file through monitors, triage and the store; raise ConfigError/InputError
    (exit code 2) or RetryableError (the database cannot be reached)."""
    if not events.is_file():
        raise InputError(f"cannot read {events}: no such file")
    config = load_config(config_path)
    store = open_store(db)
    rejects = _RejectsFile(rejects_out or Path(f"{events.name}.rejects.jsonl"))
    sig_fh = signals_out.open("w", encoding="utf-8") if signals_out else None
    stdout = out or sys.stdout

    def on_signal(sig: Signal) -> None:
        if sig_fh is not None:
            sig_fh.write(json.dumps(sig.to_dict()) + "\n")

    def on_page(page: Page) -> None:
        print(format_page(page, dry_run=pipeline.dry_run), file=stdout)

    source = str(events.resolve())
    pipeline = Pipeline(config, store, source=source, dry_run=dry_run, on_page=on_page,
                        on_signal=on_signal)
    pipeline.core.seq = store.seq_base(source)
    progress = _Progress(events.stat().st_size, "replay") if not quiet else None
    try:
        report = replay(events, pipeline.core, on_reject=rejects.write,
                        on_bytes=progress.advance if progress else None, process=pipeline.feed)
    except OSError as exc:
        raise InputError(f"cannot read {events}: {exc.strerror or exc}") from None
    finally:
        if progress is not None:
            progress.close()
        rejects.close()
        if sig_fh is not None:
            sig_fh.close()
        store.close()
    report.extra = {"alerts": len(pipeline.totals.alerts),
                    "incidents": len(pipeline.totals.incidents),
                    "pages": len(pipeline.totals.pages),
                    "database": redact(store.url)}
    if report_out is not None:
        body = report.to_dict()
        if rejects.count:
            body["rejects_file"] = str(rejects.path)
        report_out.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return report, pipeline


def existing_store(db: str) -> tuple[SqlStore | None, int]:
    """The store at ``db`` for a command that reads or acts on history (it must be at the
    current schema), or None and the exit code, the error already printed."""
    try:
        return open_store(db, migrate=False), EXIT_OK
    except ConfigError as exc:
        return None, _fail(str(exc))
    except RetryableError as exc:
        return None, _unavailable(exc)


def print_incidents(incidents: Sequence[Incident], triage: Triage,
                    out: IO[str] | None = None) -> None:
    """A table of incidents: routed where, and why."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(incidents)} incidents", title_justify="left", show_lines=True)
    for col in ("model", "route", "severity", "opened", "alerts", "lead finding", "why"):
        table.add_column(col, overflow="fold")
    for inc in sorted(incidents, key=lambda i: i.opened_at):
        why = "; ".join(f.note for f in inc.factors)
        lead = triage.alerts.get(inc.lead_alert_id or "")
        table.add_row(inc.model_id, str(inc.route), f"{inc.severity:.2f}", iso(inc.opened_at),
                      str(len(inc.alert_ids)), escape(lead.summary if lead else inc.summary),
                      escape(why))
    from watchkeeper import history

    history.console(out).print(table)


def history_db(args: argparse.Namespace, settings: Settings) -> str | None:
    """The database of a command that reads or acts on history: ``--db``, else
    ``WATCHKEEPER_DATABASE_URL``, else the file replay writes by default if it is here
    (never a new one)."""
    return settings.database_url(args.db) or (
        DEFAULT_DB if Path(DEFAULT_DB.removeprefix("sqlite:///")).is_file() else None)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report, pipeline = run_replay(args.events, args.config,
                                      db=settings.database_url(args.db) or DEFAULT_DB,
                                      signals_out=args.signals_out, rejects_out=args.rejects_out,
                                      report_out=args.report, quiet=args.quiet,
                                      dry_run=not settings.slack.enabled)
    except (ConfigError, InputError) as exc:
        return _fail(str(exc))
    except RetryableError as exc:
        return _unavailable(exc)
    body = report.to_dict()
    print(f"{body['events_read']} events: {body['accepted']} accepted, "
          f"{body['duplicates']} duplicates, {body['rejected']['total']} rejected; "
          f"{body['signals']['total']} signals -> {body['alerts']} alerts -> "
          f"{body['incidents']} incidents -> {body['pages']} pages "
          f"in {body['elapsed_seconds']} s ({body['events_per_second']} events/s); "
          f"history in {body['database']}")
    if not args.quiet:
        incidents = [pipeline.triage.incidents[i] for i in sorted(pipeline.totals.incidents)
                     if i in pipeline.triage.incidents]
        if incidents:
            print_incidents(incidents, pipeline.triage)
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from watchkeeper import history

    db = history_db(args, settings)
    if db is None:
        return _fail(NO_DATABASE)
    store, code = existing_store(db)
    if store is None:
        return code
    try:
        if args.alerts_command == "list":
            history.print_list(store, model=args.model, status=args.status, kind=args.kind,
                               limit=args.limit)
            return EXIT_OK
        if not history.print_alert(store, args.alert_id):
            return _fail(f"no alert {args.alert_id!r}")
        return EXIT_OK
    finally:
        store.close()


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from watchkeeper import history

    db = history_db(args, settings)
    if db is None:
        return _fail(NO_DATABASE)
    store, code = existing_store(db)
    if store is None:
        return code
    try:
        history.print_query(store, args.query)
    except QueryError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    return EXIT_OK


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    db = settings.database_url(args.db)
    if db is None:  # never migrate a database nobody named
        return _fail(NO_DATABASE)
    url = database_url(db)
    target = args.revision or ("head" if args.db_command == "upgrade" else "base")
    try:
        migrate(url, args.db_command, target)
    except RetryableError as exc:
        print(f"watchkeeper: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"database {redact(url)}: {args.db_command} to {target} done")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from sim.scenarios import SCENARIOS, generate, write_scenario

    if args.scenario not in SCENARIOS:
        return _fail(f"unknown scenario {args.scenario!r}; known: {', '.join(SCENARIOS)}")
    if args.out is None and args.bootstrap is None:
        return _fail("give --out FILE, --bootstrap HOST:PORT, or both")
    try:
        scenario = generate(args.scenario, predictions=args.predictions, seed=args.seed)
    except ValueError as exc:
        return _fail(str(exc))
    if args.bootstrap is not None:
        code = _produce(scenario.events, args)
        if code != EXIT_OK or args.out is None:
            return code
    try:
        files = write_scenario(scenario, args.out)
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"{args.scenario}: {len(scenario.events)} events -> {files.events}")
    print(f"  reference {files.reference}\n  config    {files.config}\n  truth     {files.truth}")
    for inc in scenario.incidents:
        print(f"  incident {inc.name} at event {inc.onset_index} "
              f"({'actionable' if inc.actionable else 'not actionable'}): {inc.description}")
    return EXIT_OK


def _produce(events: list[dict[str, object]], args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sim.produce import produce, producer

    try:
        kafka = producer(args.bootstrap)
    except KafkaError as exc:
        print(f"watchkeeper: error: cannot reach Kafka at {args.bootstrap}: {exc}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    with Progress(TextColumn(f"{args.scenario} → {args.bootstrap}"), BarColumn(),
                  MofNCompleteColumn(), disable=not sys.stderr.isatty(),
                  transient=True) as bar:
        task = bar.add_task("produce", total=len(events))
        sent = produce(kafka, events, batch_size=args.batch_size, rate=args.rate,
                       on_sent=lambda n: bar.advance(task, n),
                       topics=Topics.for_prefix(args.topic_prefix))
    kafka.close()
    per = "one" if args.batch_size == 1 else f"up to {args.batch_size}"
    print(f"{args.scenario}: {sent} events produced to {args.bootstrap} ({per} per message)")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from services.worker.admin import ensure_topics
    from services.worker.processor import MessageProcessor

    try:
        given = {"config": args.config, "kafka_bootstrap": args.bootstrap,
                 "database_url": database_dsn(args.db) if args.db else None}
    except ValueError as exc:
        return _fail(f"--db: {exc}")
    worker = settings.worker.model_copy(update={k: v for k, v in given.items()
                                                if v is not None})  # the flags win
    if worker.config is None:
        return _fail("settings: config: set WATCHKEEPER_CONFIG or pass --config")
    if worker.database_url is None:
        return _fail(NO_DATABASE)
    if weak := _weak(settings, args, worker.database_url, "bot_token"):  # it decides paging
        return _fail(weak)
    try:
        config = load_config(worker.config)
        store = open_store(worker.database_url, migrate=False)
    except ConfigError as exc:
        return _fail(str(exc))
    except RetryableError as exc:
        return _unavailable(exc)
    # Faust commits the offsets of the messages its agent took: only a checkpoint with
    # every batch keeps its commits behind the state (the direct engine commits them itself)
    interval = worker.checkpoint_interval if worker.engine == "direct" else 0.0
    processor = MessageProcessor(config, store, app_id=worker.app_id,
                              dry_run=not settings.slack.enabled, checkpoint_interval=interval,
                              inputs=Topics.for_prefix(worker.topic_prefix).inputs)
    try:
        ensure_topics(worker)
    except Exception as exc:  # kafka-python raises several kinds for an absent broker
        return _unavailable(RetryableError(f"cannot reach Kafka at "
                                           f"{worker.kafka_bootstrap}: {exc}"))
    if worker.engine == "direct":
        from services.worker.aiokafka_engine import run_aiokafka

        run_aiokafka(worker, processor)
    else:
        from services.worker.faust_engine import run_faust

        run_faust(worker, processor)
    return EXIT_OK


def cmd_notify(args: argparse.Namespace, settings: Settings) -> int:
    from services.notifier import run_notifier

    slack = settings.slack
    if not slack.enabled:
        return _fail("set WATCHKEEPER_SLACK_BOT_TOKEN (see README: Slack)")
    db = settings.database_url(args.db)
    if db is None:
        return _fail(NO_DATABASE)
    if weak := _weak(settings, args, db, "bot_token"):
        return _fail(weak)
    config_path = args.config or settings.common.config
    try:
        oncall = load_config(config_path).oncall if config_path else None
    except ConfigError as exc:
        return _fail(str(exc))
    store, code = existing_store(db)
    if store is None:
        return code
    from services.health import HealthServer, Readiness
    from services.notifier import NotifierMetrics

    readiness, metrics = Readiness(), NotifierMetrics()
    health = (HealthServer(readiness, port=args.port, registry=metrics.registry).start()
              if args.port else None)
    try:
        report = run_notifier(store, slack, once=args.once, interval=args.interval,
                              oncall=oncall, digest_every=args.digest_hours * 3600,
                              readiness=readiness, metrics=metrics)
    except RetryableError as exc:  # --once while the database is away
        return _unavailable(exc)
    finally:
        store.close()
        if health is not None:
            health.stop()
    print(f"notify: {report.sent} delivered, {report.failed} still pending "
          f"({report.attempts} attempts)")
    return EXIT_OK if report.failed == 0 else EXIT_UNAVAILABLE


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from services.api import build_api
    from services.notifier import slack_client

    slack = settings.slack
    if not slack.signing_secret and not slack.api_token:
        return _fail("set WATCHKEEPER_SLACK_SIGNING_SECRET and/or WATCHKEEPER_API_TOKEN "
                     "(see README: Slack)")
    db = settings.database_url(args.db)
    if db is None:
        return _fail(NO_DATABASE)
    if weak := _weak(settings, args, db, "signing_secret", "api_token", "bot_token",
                     "session_secret"):
        return _fail(weak)
    store, code = existing_store(db)
    if store is None:
        return code
    client = slack_client(slack) if slack.enabled else None
    app = build_api(store, slack.reveal("signing_secret"), client,
                    api_token=slack.reveal("api_token"), console=settings.console)
    # no Server header (the app's middleware strips one too), no access log of tokens
    uvicorn.run(app, host=args.host, port=args.port, server_header=False,
                access_log=False, log_level="warning")
    return EXIT_OK


def cmd_action(args: argparse.Namespace, settings: Settings) -> int:
    """ack / resolve / silence / not-actionable from the terminal."""
    from datetime import UTC, datetime

    db = history_db(args, settings)
    if db is None:
        return _fail(NO_DATABASE)
    store, code = existing_store(db)
    if store is None:
        return code
    try:
        ids = store.find_alerts(args.alert_id)
        if len(ids) != 1:
            return _fail(f"{len(ids)} alerts match {args.alert_id!r}; give a longer id")
        result = store.act(ids[0], args.action, args.by, datetime.now(tz=UTC),
                           note=args.note, silence_for=args.hours * 3600)
    finally:
        store.close()
    assert result is not None
    print(f"{result.alert_id}: {args.action.value.replace('_', ' ')} by {args.by}; "
          f"status {result.status}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from watchkeeper.demo import run_demo

    return run_demo(Path(args.workdir) if args.workdir else None)


DB_HELP = "alert history database URL or SQLite file (WATCHKEEPER_DATABASE_URL)"
SECRETS_HELP = ("Unless WATCHKEEPER_ENV=development, it refuses to start when a secret it "
                "reads (WATCHKEEPER_SLACK_BOT_TOKEN, WATCHKEEPER_SLACK_SIGNING_SECRET, "
                "WATCHKEEPER_API_TOKEN) is a placeholder (changeme, xoxb-your-token, ...) or "
                "shorter than 16 characters, or the database password is a placeholder or the "
                "user's name. An empty secret counts as unset.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchkeeper",
        description="Streaming monitoring and alert triage for ML models in production.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="run the pipeline over a JSON Lines file in event time")
    p.add_argument("events", type=Path, help="events file (JSON Lines, CONTRACT §1)")
    p.add_argument("--config", type=Path, required=True, help="configuration (YAML)")
    p.add_argument("--report", type=Path, help="write a JSON report here")
    p.add_argument("--signals-out", type=Path, help="write signals as JSON Lines here")
    p.add_argument("--rejects-out", type=Path,
                   help="where rejected events are kept (default: EVENTS-NAME.rejects.jsonl "
                        "in the current folder, written only when there are rejects)")
    p.add_argument("--db", help="alert history database URL or SQLite file "
                                "(WATCHKEEPER_DATABASE_URL; default watchkeeper.db here)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=cmd_replay)

    a = sub.add_parser("alerts", help="alert history from the terminal")
    asub = a.add_subparsers(dest="alerts_command", required=True)
    al = asub.add_parser("list", help="recent alerts, newest first")
    al.add_argument("--db", help=DB_HELP)
    al.add_argument("--model")
    al.add_argument("--status", choices=[s.value for s in Status])
    al.add_argument("--kind", choices=[k.value for k in Kind])
    al.add_argument("--limit", type=int, default=50)
    ashow = asub.add_parser("show", help="one alert: evidence, score factors, occurrences, pages")
    ashow.add_argument("alert_id", help="an alert id (a unique prefix is enough)")
    ashow.add_argument("--db", help=DB_HELP)
    a.set_defaults(func=cmd_alerts)

    q = sub.add_parser("sql", help="run a query on the alert history (e.g. its SQL views)")
    q.add_argument("query", help="e.g. \"SELECT * FROM alert_history ORDER BY last_seen DESC\"")
    q.add_argument("--db", help=DB_HELP)
    q.set_defaults(func=cmd_sql)

    dbp = sub.add_parser("db", help="database schema migrations")
    dsub = dbp.add_subparsers(dest="db_command", required=True)
    for name, help_ in (("upgrade", "migrate up (default: to the latest revision)"),
                        ("downgrade", "migrate down (default: remove everything)")):
        sp = dsub.add_parser(name, help=help_)
        sp.add_argument("--db", help=DB_HELP)
        sp.add_argument("--revision")
    dbp.set_defaults(func=cmd_db)

    from sim.scenarios import SCENARIOS

    s = sub.add_parser("simulate", help="write a seeded scenario stream with its ground truth")
    s.add_argument("--scenario", required=True, help=f"one of: {', '.join(SCENARIOS)}")
    s.add_argument("--out", type=Path, help="events file to write (with reference, config, truth)")
    s.add_argument("--bootstrap", help="produce the events to this Kafka (host:port)")
    s.add_argument("--rate", type=float, default=0.0, help="events/s to Kafka (0: unpaced)")
    s.add_argument("--batch-size", type=int, default=1,
                   help="events per Kafka message (a JSON array when > 1)")
    s.add_argument("--topic-prefix", default="watchkeeper",
                   help="produce to PREFIX.predictions, .outcomes, .metrics")
    s.add_argument("--predictions", type=int, default=40_000, help="predictions (default 40000)")
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(func=cmd_simulate)

    w = sub.add_parser("worker", help="the live stream processor on Kafka (Faust)",
                       description="Settings come from WATCHKEEPER_* environment variables "
                                   "(see README); these flags override them.",
                       epilog=SECRETS_HELP)
    w.add_argument("--config", type=Path, help="configuration (WATCHKEEPER_CONFIG)")
    w.add_argument("--bootstrap", help="Kafka host:port (WATCHKEEPER_KAFKA_BOOTSTRAP)")
    w.add_argument("--db", help="alert history database URL (WATCHKEEPER_DATABASE_URL)")
    w.set_defaults(func=cmd_worker)

    helps = {Action.ACKNOWLEDGE: "acknowledge an alert", Action.RESOLVE: "resolve an alert",
             Action.SILENCE: "silence an alert's model, kind and subject",
             Action.NOT_ACTIONABLE: "mark an alert not actionable (lowers later scores)"}
    for action in Action:
        ap_ = sub.add_parser(action.command, help=helps[action])
        ap_.add_argument("alert_id", help="an alert id (a unique prefix is enough)")
        ap_.add_argument("--by", default=os.environ.get("USER", "cli"), help="who")
        ap_.add_argument("--note", default="")
        ap_.add_argument("--hours", type=float, default=24.0, help="silence length")
        ap_.add_argument("--db", help=DB_HELP)
        ap_.set_defaults(func=cmd_action, action=action)

    n = sub.add_parser("notify", help="deliver pages from the outbox to Slack",
                       epilog=SECRETS_HELP)
    n.add_argument("--db", help=DB_HELP)
    n.add_argument("--once", action="store_true", help="deliver what is pending and exit")
    n.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    n.add_argument("--port", type=int, default=0,
                   help="serve /healthz, /readyz (503 while the database is away) and "
                        "/metrics on 127.0.0.1:PORT (default 0: none)")
    n.add_argument("--digest-hours", type=float, default=24.0,
                   help="how often the digest of non-paging findings is posted")
    n.add_argument("--config", type=Path,
                   help="configuration with the on-call rotation (oncall:) for mentions "
                        "and escalation (default: WATCHKEEPER_CONFIG)")
    n.set_defaults(func=cmd_notify)

    api = sub.add_parser("api", help="the web console, Slack's buttons "
                                     "(/slack/interactions), the HTTP actions, /metrics",
                         epilog=SECRETS_HELP)
    api.add_argument("--db", help=DB_HELP)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    api.set_defaults(func=cmd_api)

    d = sub.add_parser("demo", help="the built-in scenarios end to end, no services needed")
    d.add_argument("--workdir", help="where to write the demo's files (default: a temp dir)")
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    tune_gc()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "db", None):  # checked here: argparse would echo it, password and all
        try:
            database_dsn(args.db)
        except ValueError as exc:
            return _fail(f"--db: {exc}")
    try:
        settings = load_settings()  # the process's one settings object, passed in
    except ValidationError as exc:  # one line naming the variable, never its value
        first = exc.errors()[0]
        return _fail(f"settings: {variable(exc.title, str(first['loc'][0]))}: "
                     f"{str(first['msg']).removeprefix('Value error, ')}")
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
