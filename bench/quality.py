"""Alert quality: does Watchkeeper page when a person must act, and only then?

Replays every scenario (seeded, with ground truth) through the core and triage, and
scores the pages against the truth, beside a naive baseline that pages on every drift
signal (``drift``, ``prediction_drift``, ``label_drift``), as a per-feature drift test
suite would.

- a page is *true* when it comes at or after the onset of an actionable incident of its
  scenario (every incident lasts to the end of the stream), else *false*;
- an actionable incident is *recalled* when a page comes within ``--max-delay`` events
  of its onset;
- detection delay is the number of events from the onset to the first true page.

Usage: ``python bench/quality.py [--predictions N] [--seeds 7 8 9] [--max-delay E]``;
prints JSON per scenario and seed and in total, for both policies.
Goals (issue 3): recall >= 95 %, precision >= 90 %, <= 1.2 pages per actionable incident,
no page on the stationary and benign-drift scenarios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.runner import replay
from stream.scenarios import SCENARIOS, generate, write_scenario
from stream.signals import Signal
from watchkeeper.config import load_config
from watchkeeper.pipeline import Pipeline
from watchkeeper.runtime import tune_gc

DRIFT_KINDS = ("drift", "prediction_drift", "label_drift")


@dataclass
class Tally:
    pages: int = 0
    true_pages: int = 0
    actionable: int = 0
    recalled: int = 0
    pages_in_actionable: int = 0
    quiet_violations: int = 0  # pages on stationary / benign scenarios
    delays: list[int] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("pages", "true_pages", "actionable", "recalled", "pages_in_actionable",
                     "quiet_violations"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.delays.extend(other.delays)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "actionable_incidents": self.actionable,
            "recall": round(self.recalled / self.actionable, 4) if self.actionable else None,
            "precision": round(self.true_pages / self.pages, 4) if self.pages else None,
            "pages_per_actionable_incident": round(self.pages_in_actionable / self.actionable, 3)
            if self.actionable else None,
            "pages_on_quiet_scenarios": self.quiet_violations,
            "detection_delay_events": {
                "median": statistics.median(self.delays) if self.delays else None,
                "max": max(self.delays) if self.delays else None,
            },
        }


def score(page_seqs: list[int], onset: int | None, actionable: bool, max_delay: int) -> Tally:
    t = Tally(pages=len(page_seqs))
    if onset is None or not actionable:
        t.quiet_violations = len(page_seqs)
        return t
    true = [s for s in page_seqs if s >= onset]
    t.true_pages = len(true)
    t.actionable = 1
    t.pages_in_actionable = len(page_seqs)
    if true and true[0] - onset <= max_delay:
        t.recalled = 1
        t.delays.append(true[0] - onset)
    return t


def _collect_drift(into: list[int]) -> Callable[[Signal], None]:
    def collect(signal: Signal) -> None:
        if str(signal.kind) in DRIFT_KINDS:
            into.append(signal.seq)

    return collect


def main() -> None:
    tune_gc()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=40_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    ap.add_argument("--max-delay", type=int, default=15_000,
                    help="events after the onset within which a page counts as recall")
    args = ap.parse_args()

    runs: list[dict[str, Any]] = []
    total = {"watchkeeper": Tally(), "page_on_every_drift": Tally()}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in SCENARIOS:
                scenario = generate(name, predictions=args.predictions, seed=seed)
                files = write_scenario(scenario, Path(tmp) / f"{name}-{seed}.jsonl")
                drift_seqs: list[int] = []
                pipeline = Pipeline(load_config(files.config), None, source=name,
                                    on_signal=_collect_drift(drift_seqs))
                replay(files.events, pipeline.core, process=pipeline.feed)
                incident = scenario.incidents[0] if scenario.incidents else None
                onset = incident.onset_index if incident else None
                actionable = bool(incident and incident.actionable)
                ours = score(sorted(p.seq for p in pipeline.totals.pages), onset, actionable,
                             args.max_delay)
                naive = score(sorted(drift_seqs), onset, actionable, args.max_delay)
                total["watchkeeper"].add(ours)
                total["page_on_every_drift"].add(naive)
                runs.append({"scenario": name, "seed": seed, "onset": onset,
                             "actionable": actionable,
                             "watchkeeper": ours.to_dict(),
                             "page_on_every_drift": naive.to_dict()})
    print(json.dumps({
        "benchmark": "quality",
        "predictions_per_scenario": args.predictions,
        "seeds": args.seeds,
        "max_delay_events": args.max_delay,
        "total": {k: v.to_dict() for k, v in total.items()},
        "goals": {"recall": 0.95, "precision": 0.9, "pages_per_actionable_incident": 1.2,
                  "pages_on_quiet_scenarios": 0},
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
