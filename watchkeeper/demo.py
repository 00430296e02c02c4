"""``watchkeeper demo``: the built-in scenarios end to end, on embedded defaults.

No services: each scenario is generated as the stream of its own model, replayed through
the same core and triage the Kafka worker runs, into one SQLite database. It prints the
incidents (paged, or digest only, and why), the funnel from events to pages beside what
a page-on-every-drift policy would have sent, and where the database is.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import IO

from rich.markup import escape
from rich.table import Table

from alerts.model import Route
from alerts.store.sql import SqlStore
from config.file import load_config
from services.pipeline import Pipeline
from services.replay import replay
from sim.scenarios import SCENARIOS, generate, write_scenario
from stream.signals import iso
from watchkeeper.history import console as make_console

DEMO_PREDICTIONS = 20_000
DRIFT_KINDS = ("drift", "prediction_drift", "label_drift")


def run_demo(workdir: Path | None = None, out: IO[str] | None = None) -> int:
    """Generate and replay every scenario; print what was paged and why. Returns 0."""
    console = make_console(out)
    base = workdir or Path(tempfile.mkdtemp(prefix="watchkeeper-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    db = base / "watchkeeper.db"
    db.unlink(missing_ok=True)
    store = SqlStore(str(db))
    started = time.perf_counter()
    events = signals = drift_signals = alerts = 0
    table = Table(title="Incidents", title_justify="left", show_lines=True)
    for col in ("model (scenario)", "truth", "route", "first page / opened", "alerts",
                "why"):
        table.add_column(col, overflow="fold")
    pages = incidents_total = 0
    for name in SCENARIOS:
        model_id = f"loan_{name}"
        scenario = generate(name, predictions=DEMO_PREDICTIONS, seed=7, model_id=model_id)
        files = write_scenario(scenario, base / f"{name}.jsonl")
        pipeline = Pipeline(load_config(files.config), store, source=str(files.events))
        report = replay(files.events, pipeline.core, process=pipeline.feed)
        totals = pipeline.totals
        events += report.events_read
        signals += sum(totals.signals.values())
        drift_signals += sum(totals.signals[k] for k in DRIFT_KINDS)
        alerts += len(totals.alerts)
        pages += len(totals.pages)
        incidents_total += len(totals.incidents)  # a model per scenario: none shared
        truth = "; ".join(f"{i.name} from event {i.onset_index} "
                          f"({'actionable' if i.actionable else 'not actionable'})"
                          for i in scenario.incidents) or "healthy"
        incidents = [pipeline.triage.incidents[i] for i in sorted(totals.incidents)]
        if not incidents:
            table.add_row(model_id, truth, "-", "-", "0", "no alert")
        for inc in incidents:
            page = next((p for p in totals.pages if p.incident_id == inc.incident_id), None)
            when = (f"paged at event {page.seq} ({iso(page.paged_at)})" if page
                    else f"opened {iso(inc.opened_at)}")
            route = "PAGE" if inc.route is Route.PAGE else str(inc.route)
            why = "; ".join(f.note for f in inc.factors)
            table.add_row(model_id, truth, route, when, str(len(inc.alert_ids)), escape(why))
    store.close()
    console.print(table)
    console.print(
        f"[bold]{events:,} events → {signals:,} signals → {alerts} alerts → "
        f"{incidents_total} incidents → {pages} pages[/bold] "
        f"(a page-on-every-drift policy would have sent {drift_signals:,}); "
        f"{time.perf_counter() - started:.1f} s")
    console.print(f"\nAlert history: {db}  (scenario files beside it)\nTry:")
    console.print(f"  watchkeeper sql --db {db} \"SELECT model_id, kind, subject, severity, "
                  "status, paged FROM alert_history ORDER BY severity DESC LIMIT 10\"")
    console.print(f"  watchkeeper sql --db {db} \"SELECT paged_at, model_id, kind, subject, "
                  "channel FROM pages ORDER BY paged_at\"")
    console.print(f"  watchkeeper alerts list --db {db}")
    console.print("The console on it (sign in with any name and the token demo; then open "
                  "http://127.0.0.1:8080/):")
    console.print(f"  WATCHKEEPER_ENV=development WATCHKEEPER_API_TOKEN=demo watchkeeper api "
                  f"--db {db}")
    return 0

