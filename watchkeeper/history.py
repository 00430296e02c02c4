"""Alert history from the terminal (``watchkeeper alerts list|show``, ``watchkeeper sql``):
reads through the store's history interface, prints rich tables."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alerts.store import HistoryStore


def console(out: IO[str] | None = None) -> Console:
    """Where tables go: a terminal at its own width (tables wrap to fit it), anything else
    (a file, a pipe, a test) 160 columns wide."""
    stream = out or sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160)


def print_list(store: HistoryStore, *, model: str | None = None, status: str | None = None,
               kind: str | None = None, limit: int = 50, out: IO[str] | None = None) -> int:
    """Print recent alerts from ``alert_history``; returns how many were printed."""
    rows = store.recent_alerts(model=model, status=status, kind=kind, limit=limit)
    table = Table(title=f"{len(rows)} alerts (newest first)", title_justify="left")
    for col in ("id", "model", "kind", "subject", "severity", "route", "status", "first seen",
                "last seen", "seen", "paged", "ack by"):
        table.add_column(col, overflow="fold")
    for r in rows:
        subject = r.subject + (f" [{r.slice}]" if r.slice else "")
        table.add_row(r.alert_id[:8], r.model_id, r.kind, escape(subject),
                      f"{r.severity:.2f}", r.route, r.status, str(r.first_seen)[:19],
                      str(r.last_seen)[:19], str(r.occurrences),
                      "yes" if r.paged else "", r.acknowledged_by or "")
    console(out).print(table)
    return len(rows)


def print_alert(store: HistoryStore, alert_id: str, out: IO[str] | None = None) -> bool:
    """Print one alert (by id or unique id prefix); False when there is none."""
    detail = store.alert_detail(alert_id)
    if detail is None:
        return False
    a: dict[str, Any] = detail.alert
    occurrences, pages = detail.occurrences, detail.pages
    con = console(out)
    con.print(f"[bold]{escape(a['summary'])}[/bold]")
    for key in ("alert_id", "fingerprint", "incident_id", "model_id", "model_version", "kind",
                "subject", "slice", "statistic", "status", "severity", "route", "first_seen",
                "last_seen", "occurrences", "paged", "acknowledged_at", "acknowledged_by",
                "resolved_at", "silenced_by", "inhibited_by", "flapping"):
        con.print(f"  {key:16} {escape(str(a[key]))}")
    factors = a["factors"] if isinstance(a["factors"], list) else json.loads(a["factors"])
    evidence = a["evidence"] if isinstance(a["evidence"], dict) else json.loads(a["evidence"])
    con.print("  why (severity factors):")
    for f in factors:
        con.print(f"    {f['name']:12} {f['value']:+.3f}  {escape(f['note'])}")
    con.print("  latest evidence: " + escape(json.dumps(evidence)))
    values = ", ".join(f"{seq}: {value:.4g}" for seq, _, value in occurrences[-10:])
    con.print(f"  occurrences ({len(occurrences)}; last 10 as event: value): {values}")
    for p in pages:
        state = "dry run" if p["dry_run"] else ("delivered" if p["delivered"] else "pending")
        con.print(f"  page {p['page_id'][:8]} at {str(p['paged_at'])[:19]} to {p['channel']}, "
                  f"level {p['escalation_level']}, {state}")
    return True


def print_query(store: HistoryStore, sql: str, out: IO[str] | None = None) -> int:
    """Run one read query (e.g. over the CONTRACT views) and print the rows as a table."""
    columns, rows = store.query(sql)
    table = Table(title=f"{len(rows)} rows", title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(v)) for v in row))
    console(out).print(table)
    return len(rows)
