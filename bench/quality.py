"""Alert quality on data Watchkeeper was not written for: does it page when a person must
act, only then, once per incident, and the same whatever the traffic rate, label delay,
batching, or a worker catching up a backlog?

Data, and nothing else (every figure names its source):

- ``river``: streams built from river's concept-drift generators (``river.datasets.synth``:
  SEA, Agrawal, Hyperplane, ``ConceptDriftStream``) and its bundled real datasets (Bananas,
  Shuttle), each with a model trained on the pre-drift concept (``bench/cases.py``);
- ``generator``: the project's own seeded scenarios (``sim/scenarios.py``).

Every stream runs at two traffic rates (200 events/s: a prediction every 0.005 s; and one
prediction every 10 minutes), with label delays of 0, 1 and 30 days, as one file through the
in-process pipeline and as a worker catching up a backlog (the live processor, fetches of
50,000 records, the predictions topic drained first: ``bench/variants.py``): 12 runs.

Scoring, in predictions (the model's own count, the same at every rate). A page stands at
the latest prediction that had arrived when it was sent; a performance page, which needs
labels, at the latest prediction whose label had come (with labels a day late at 200
events/s every label comes after the last prediction: measured in arrived predictions, no
monitor could be faster than the stream's length):

- a page is *true* when it stands within an actionable incident (from its onset to its
  end, plus 2,000 predictions for the evidence to arrive), else false;
- an actionable incident is *recalled* when a true page comes within ``--max-delay``
  predictions of its onset; its detection delay is the distance to the first one;
- pages per actionable incident: true pages over actionable incidents;
- identical: every run of a stream pages the same incidents, as many times (which of an
  incident's findings leads its page may differ with the label delay: with labels a month
  late its corrupted inputs are seen first); and, exactly (the same lead finding at the
  same event index), the file and backlog runs of each rate and delay, and the two rates
  without a label delay (the same order of events).

Beside Watchkeeper, a naive policy that pages on every drift signal (``drift``,
``prediction_drift``, ``label_drift``), scored the same way on the 200 events/s, no-delay
file run.

Usage: ``python bench/quality.py [--quick] [--only river|generator] [--cases a b]
[--out report.json]``. Goals (issue 9, all cases): recall >= 0.95, precision >= 0.95,
<= 1.2 pages per actionable incident, no page on stationary or benign streams, identical
pages across rates, delays and batchings, median detection delay <= 2,500 predictions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cases import Case, build_cases
from variants import Labelled, lines, place, replay_backlog, replay_file

from config.file import Config, load_config
from sim.scenarios import SCENARIOS, generate
from stream.signals import Signal
from watchkeeper.runtime import tune_gc

DRIFT_KINDS = ("drift", "prediction_drift", "label_drift")
RATES = {"200/s": 0.005, "1/10min": 600.0}
DELAYS = {"0": 0.0, "1d": 86_400.0, "30d": 30 * 86_400.0}
EVIDENCE_PREDICTIONS = 2_000


@dataclass(frozen=True)
class TrueIncident:
    onset: int  # prediction index
    end: int | None  # first prediction after it (None: to the end)
    actionable: bool
    note: str


@dataclass
class Stream:
    name: str
    source: str  # "river" or "generator"
    origin: str  # what it was built from
    model_id: str
    model: dict[str, Any]
    reference: list[dict[str, Any]]
    rows: list[Labelled]
    incidents: tuple[TrueIncident, ...]


def from_case(case: Case) -> Stream:
    def event(i: int, row: Any, prefix: str) -> dict[str, Any]:
        return {"model_id": case.model_id, "model_version": row.version,
                "request_id": f"{prefix}{i}", "features": dict(row.features),
                "prediction": row.prediction, "score": row.score}

    reference = [{**event(i, r, "ref-"), "type": "prediction", "ts": 1_500_000_000 + i,
                  "label": r.label} for i, r in enumerate(case.reference)]
    rows = [Labelled(event(i, r, "r"), r.label, r.label_mode) for i, r in enumerate(case.rows)]
    incidents = tuple(TrueIncident(t.onset, t.end, t.actionable, t.note) for t in case.incidents)
    return Stream(case.name, "river", case.source, case.model_id, dict(case.model), reference,
                  rows, incidents)


def from_scenario(name: str, seed: int, predictions: int) -> Stream:
    """A generator scenario as rows: inline labels stay, outcomes become labels that come
    later, metric events follow their prediction."""
    sc = generate(name, predictions=predictions, seed=seed)
    outcomes = {e["request_id"]: e["label"] for e in sc.events if e["type"] == "outcome"}
    rows: list[Labelled] = []
    onset_line = sc.incidents[0].onset_index if sc.incidents else None
    onset: int | None = None
    for k, e in enumerate(sc.events):
        if onset_line is not None and onset is None and k >= onset_line:
            onset = len(rows)
        if e["type"] == "prediction":
            pred = {key: v for key, v in e.items() if key not in ("type", "ts", "label")}
            if "label" in e:
                rows.append(Labelled(pred, e["label"], "inline"))
            elif e["request_id"] in outcomes:
                rows.append(Labelled(pred, outcomes[str(e["request_id"])], "outcome"))
            else:
                rows.append(Labelled(pred, None, "none"))
        elif e["type"] == "metric" and rows:
            last = rows[-1]
            metric = {key: v for key, v in e.items() if key != "ts"}
            rows[-1] = Labelled(last.prediction, last.label, last.mode, (*last.after, metric))
    model_id = str(sc.events[0]["model_id"])
    models = sc.config["models"]
    assert isinstance(models, dict)
    model = dict(models[model_id])
    model.pop("reference", None)
    incidents = tuple(TrueIncident(onset if onset is not None else 0, None, i.actionable,
                               i.description) for i in sc.incidents)
    return Stream(f"{name}-{seed}", "generator", f"sim.scenarios.generate({name!r}, "
                  f"seed={seed})", model_id, model, list(sc.reference), rows, incidents)


@dataclass
class Tally:
    runs: int = 0
    pages: int = 0
    true_pages: int = 0
    actionable: int = 0
    recalled: int = 0
    quiet_pages: int = 0  # pages on streams with no actionable incident
    delays: list[int] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("runs", "pages", "true_pages", "actionable", "recalled", "quiet_pages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.delays.extend(other.delays)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "pages": self.pages,
            "actionable_incidents": self.actionable,
            "recall": round(self.recalled / self.actionable, 4) if self.actionable else None,
            "precision": round(self.true_pages / self.pages, 4) if self.pages else None,
            "pages_per_actionable_incident": round(self.true_pages / self.actionable, 3)
            if self.actionable else None,
            "pages_on_quiet_streams": self.quiet_pages,
            "detection_delay_predictions": {
                "median": statistics.median(self.delays) if self.delays else None,
                "max": max(self.delays) if self.delays else None,
            },
        }


def assign(q: int, incidents: Sequence[TrueIncident], total: int) -> int:
    """The actionable incident (its index among the actionable ones) a page at prediction
    ``q`` belongs to, or -1 (a false page)."""
    hit = -1
    for k, inc in enumerate(i for i in incidents if i.actionable):
        end = (inc.end if inc.end is not None else total) + EVIDENCE_PREDICTIONS
        if inc.onset <= q < end:
            hit = k
    return hit


def score(page_predictions: Sequence[int], incidents: Sequence[TrueIncident], total: int,
          max_delay: int) -> Tally:
    """Score pages (as prediction indices) against the truth of one run."""
    t = Tally(runs=1, pages=len(page_predictions))
    actionable = [i for i in incidents if i.actionable]
    t.actionable = len(actionable)
    first: dict[int, int] = {}
    for q in sorted(page_predictions):
        hit = assign(q, incidents, total)
        if hit < 0:
            if not actionable:
                t.quiet_pages += 1
            continue
        t.true_pages += 1
        first.setdefault(hit, q)
    for k, q in first.items():
        if q - actionable[k].onset <= max_delay:
            t.recalled += 1
            t.delays.append(q - actionable[k].onset)
    return t


def positions(events: Sequence[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """For each event index: the index of the last prediction at or before it, and of the
    latest prediction whose label had come by then (-1: none yet)."""
    arrived, labelled = [], []
    n, top = -1, -1
    requests: dict[Any, int] = {}
    for e in events:
        kind = e.get("type")
        if kind == "prediction":
            n += 1
            requests[e.get("request_id")] = n
            if "label" in e:
                top = max(top, n)
        elif kind == "outcome":
            top = max(top, requests.get(e.get("request_id"), -1))
        arrived.append(max(n, 0))
        labelled.append(top)
    return arrived, labelled


def where(kind: str, statistic: str, seq: int, arrived: Sequence[int],
          labelled: Sequence[int]) -> int:
    """Where a page stands in the model's predictions: a performance page measured on
    labels at the latest prediction whose label had come, any other (an estimate from
    scores included) at the latest prediction."""
    if kind == "performance" and not statistic.startswith("estimated_") \
            and labelled[seq] >= 0:
        return labelled[seq]
    return arrived[seq]


def write_config(stream: Stream, tmp: Path) -> Config:
    ref = tmp / f"{stream.name}.reference.jsonl"
    ref.write_bytes(b"\n".join(lines(stream.reference)) + b"\n")
    path = tmp / f"{stream.name}.config.yaml"
    path.write_text(yaml.safe_dump({"models": {stream.model_id: {**stream.model,
                                                                  "reference": ref.name}}}))
    return load_config(path)


def run_stream(stream: Stream, tmp: Path, max_delay: int) -> dict[str, Any]:
    config = write_config(stream, tmp)
    runs: dict[str, Any] = {}
    ours, naive = Tally(), Tally()
    paged: set[tuple[int, ...]] = set()  # per run: the incident of each page (-1: false)
    exact = True  # file and backlog, and both rates without label delay: the same pages
    undelayed: list[list[Any]] = []
    for rate_name, every in RATES.items():
        for delay_name, delay in DELAYS.items():
            events = place(stream.rows, every=every, delay=delay)
            arrived, labelled = positions(events)
            messages = lines(events)
            drift: list[int] = []
            _, file_pages = replay_file(config, messages, on_signal=_collect(drift))
            if rate_name == "200/s" and delay_name == "0":
                naive.add(score([arrived[s] for s in drift], stream.incidents,
                                len(stream.rows), max_delay))
            backlog = replay_backlog(config, events, batch=50_000, workdir=tmp)
            exact &= backlog == file_pages
            if delay_name == "0":
                undelayed.append(file_pages)
            for mode, pages in (("file", file_pages), ("backlog", backlog)):
                at = [where(p[1], p[5], p[-1], arrived, labelled) for p in pages]
                ours.add(score(at, stream.incidents, len(stream.rows), max_delay))
                runs[f"{rate_name} delay {delay_name} {mode}"] = {
                    "pages": [[*p[1:6], q] for p, q in zip(pages, at, strict=True)]}
                paged.add(tuple(sorted(assign(q, stream.incidents, len(stream.rows))
                                       for q in at)))
    exact &= all(pages == undelayed[0] for pages in undelayed)
    return {"name": stream.name, "source": stream.source, "origin": stream.origin,
            "incidents": [vars(i) for i in stream.incidents],
            "watchkeeper": ours.to_dict(), "page_on_every_drift": naive.to_dict(),
            "identical_pages": len(paged) == 1, "identical_exactly": exact,
            "_ours": ours, "_naive": naive, "runs": runs}


def _collect(into: list[int]) -> Callable[[Signal], None]:
    def collect(signal: Signal) -> None:
        if str(signal.kind) in DRIFT_KINDS:
            into.append(signal.seq)

    return collect


def table(results: Sequence[dict[str, Any]], totals: dict[str, dict[str, Any]]) -> str:
    head = ("| stream | data | incidents | pages | recall | precision | pages / incident "
            "| delay median / max | identical | page-on-every-drift: pages, precision |")
    rows = [head, "|" + "---|" * 10]

    def fmt(x: Any) -> str:
        return "–" if x is None else f"{x:g}" if isinstance(x, float) else str(x)

    for r in [*results, {"name": "**total**", "source": "", **totals}]:
        w, n = r["watchkeeper"], r["page_on_every_drift"]
        d = w["detection_delay_predictions"]
        same = (r.get("identical_pages"), r.get("identical_exactly"))
        rows.append(
            f"| {r['name']} | {r['source']} | {w['actionable_incidents']} | {w['pages']} | "
            f"{fmt(w['recall'])} | {fmt(w['precision'])} | "
            f"{fmt(w['pages_per_actionable_incident'])} | {fmt(d['median'])} / {fmt(d['max'])}"
            f" | {'yes' if all(x is not False for x in same) else 'no'} | "
            f"{n['pages']}, {fmt(n['precision'])} |")
    return "\n".join(rows)


def main() -> None:
    tune_gc()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller streams (about 1/8)")
    ap.add_argument("--only", choices=("river", "generator"))
    ap.add_argument("--cases", nargs="*", help="stream names to run (default: all)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-delay", type=int, default=15_000,
                    help="predictions after the onset within which a page counts as recall")
    ap.add_argument("--out", type=Path, help="write the full report (JSON) here")
    args = ap.parse_args()
    started = time.perf_counter()
    streams: list[Stream] = []
    if args.only != "generator":
        streams += [from_case(c) for c in build_cases(quick=args.quick, seed=args.seed)]
    if args.only != "river":
        n = 5_000 if args.quick else 40_000
        streams += [from_scenario(name, args.seed, n) for name in SCENARIOS]
    if args.cases:
        streams = [s for s in streams if s.name in args.cases]
    results = []
    total = {"watchkeeper": Tally(), "page_on_every_drift": Tally()}
    with tempfile.TemporaryDirectory() as tmp:
        for stream in streams:
            r = run_stream(stream, Path(tmp), args.max_delay)
            total["watchkeeper"].add(r.pop("_ours"))
            total["page_on_every_drift"].add(r.pop("_naive"))
            results.append(r)
            print(f"{stream.name}: {r['watchkeeper']}", file=sys.stderr)
    totals: dict[str, Any] = {k: v.to_dict() for k, v in total.items()}
    totals["identical_pages"] = all(r["identical_pages"] for r in results)
    totals["identical_exactly"] = all(r["identical_exactly"] for r in results)
    report = {"benchmark": "quality", "quick": args.quick, "seed": args.seed,
              "rates": RATES, "label_delays_seconds": DELAYS, "backlog_batch": 50_000,
              "max_delay_predictions": args.max_delay, "total": totals, "streams": results,
              "elapsed_seconds": round(time.perf_counter() - started, 1)}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(table(results, totals))
    print(f"\n{len(streams)} streams x 12 runs in {report['elapsed_seconds']} s")


if __name__ == "__main__":
    main()
