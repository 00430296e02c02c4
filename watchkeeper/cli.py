"""The ``watchkeeper`` command line (CONTRACT §3).

Exit codes: 0 success (rejected events are counted, not fatal); 2 an unreadable input or
an invalid configuration, with one line on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from stream.core import Core
from stream.events import Reject
from stream.reference import load_profiles
from stream.runner import ReplayReport, replay
from stream.signals import Signal
from watchkeeper.config import Config, load_config
from watchkeeper.errors import ConfigError, InputError
from watchkeeper.runtime import tune_gc

EXIT_OK = 0
EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"watchkeeper: error: {message}", file=sys.stderr)
    return EXIT_USAGE


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


def _load(config_path: Path) -> tuple[Config, Core]:
    config = load_config(config_path)
    return config, Core(config, load_profiles(config))


def run_replay(
    events: Path, config_path: Path, *, signals_out: Path | None = None,
    rejects_out: Path | None = None, report_out: Path | None = None, quiet: bool = False,
) -> tuple[ReplayReport, list[Signal]]:
    """Replay a file; raise ConfigError/InputError for the CLI's exit code 2."""
    if not events.is_file():
        raise InputError(f"cannot read {events}: no such file")
    _, core = _load(config_path)
    signals: list[Signal] = []
    rejects = _RejectsFile(rejects_out or Path(f"{events.name}.rejects.jsonl"))
    sig_fh = signals_out.open("w", encoding="utf-8") if signals_out else None

    def on_signal(sig: Signal) -> None:
        signals.append(sig)
        if sig_fh is not None:
            sig_fh.write(json.dumps(sig.to_dict()) + "\n")

    progress = _Progress(events.stat().st_size, "replay") if not quiet else None
    try:
        report = replay(events, core, on_signal=on_signal, on_reject=rejects.write,
                        on_bytes=progress.advance if progress else None)
    except OSError as exc:
        raise InputError(f"cannot read {events}: {exc.strerror or exc}") from None
    finally:
        if progress is not None:
            progress.close()
        rejects.close()
        if sig_fh is not None:
            sig_fh.close()
    if report_out is not None:
        body = report.to_dict()
        if rejects.count:
            body["rejects_file"] = str(rejects.path)
        report_out.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return report, signals


def print_signals(signals: Sequence[Signal], out: IO[str] | None = None) -> None:
    """A table of signals grouped by model, kind, subject and slice."""
    from rich.console import Console
    from rich.table import Table

    groups: dict[tuple[str, str, str, str], list[Signal]] = {}
    for s in signals:
        key = (s.model_id, str(s.kind), s.subject, s.slice or s.model_version or "")
        groups.setdefault(key, []).append(s)
    table = Table(title=f"{len(signals)} signals", title_justify="left")
    for col in ("model", "kind", "subject", "scope", "statistic", "first at", "last at",
                "count", "latest value", "threshold"):
        table.add_column(col, overflow="fold")
    for (model, kind, subject, scope), items in sorted(groups.items(),
                                                       key=lambda kv: kv[1][0].seq):
        last = items[-1]
        table.add_row(model, kind, subject, scope, last.statistic, str(items[0].seq),
                      str(last.seq), str(len(items)), f"{last.value:.4g}", f"{last.threshold:.4g}")
    Console(file=out or sys.stdout, width=140).print(table)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        report, signals = run_replay(args.events, args.config, signals_out=args.signals_out,
                                     rejects_out=args.rejects_out, report_out=args.report,
                                     quiet=args.quiet)
    except (ConfigError, InputError) as exc:
        return _fail(str(exc))
    body = report.to_dict()
    print(f"{body['events_read']} events: {body['accepted']} accepted, "
          f"{body['duplicates']} duplicates, {body['rejected']['total']} rejected; "
          f"{body['signals']['total']} signals in {body['elapsed_seconds']} s "
          f"({body['events_per_second']} events/s)")
    if not args.quiet and signals:
        print_signals(signals)
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from stream.scenarios import SCENARIOS, generate, write_scenario

    if args.scenario not in SCENARIOS:
        return _fail(f"unknown scenario {args.scenario!r}; known: {', '.join(SCENARIOS)}")
    try:
        scenario = generate(args.scenario, predictions=args.predictions, seed=args.seed)
        files = write_scenario(scenario, args.out)
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"{args.scenario}: {len(scenario.events)} events -> {files.events}")
    print(f"  reference {files.reference}\n  config    {files.config}\n  truth     {files.truth}")
    for inc in scenario.incidents:
        print(f"  incident {inc.name} at event {inc.onset_index} "
              f"({'actionable' if inc.actionable else 'not actionable'}): {inc.description}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from watchkeeper.demo import run_demo

    return run_demo(Path(args.workdir) if args.workdir else None)


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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")
    p.set_defaults(func=cmd_replay)

    from stream.scenarios import SCENARIOS

    s = sub.add_parser("simulate", help="write a seeded scenario stream with its ground truth")
    s.add_argument("--scenario", required=True, help=f"one of: {', '.join(SCENARIOS)}")
    s.add_argument("--out", type=Path, required=True, help="events file to write")
    s.add_argument("--predictions", type=int, default=40_000, help="predictions (default 40000)")
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser("demo", help="the built-in scenarios end to end, no services needed")
    d.add_argument("--workdir", help="where to write the demo's files (default: a temp dir)")
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
