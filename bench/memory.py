"""Peak memory of the monitoring core under high-cardinality input: the bounds hold.

Four cases, each in its own subprocess (so that one's memory is not another's), at full size:

- ``ids``: 1,000,000 predictions, each with a distinct ``event_id`` (the dedupe memory,
  ``limits.dedupe_capacity`` 1,000,000);
- ``join``: 1,000,000 predictions, each with a distinct ``request_id`` and no outcome yet
  (the join, ``join_max_pending`` 500,000, ``join_remember_dropped`` 50,000);
- ``slices``: 200,000 labelled predictions over 10,000 distinct values of the slice tag
  ``region`` (``max_slice_values`` 50);
- ``categories``: 200,000 labelled predictions whose ``car`` is one of 1,000 categories the
  reference never saw (``quality.max_unseen_values`` 100).

Labelled predictions carry their label inline (no join state), so that each case shows its
own structure.

Data: river's Agrawal generator (``river.datasets.synth.Agrawal``; a pool of 20,000 rows,
cycled), scored by a river logistic regression trained on other Agrawal rows; ids, slice
values and categories varied per event as above. Events are encoded per batch (4,096) and fed
to :meth:`stream.core.Core.process`, as the worker does; the configuration's defaults apply.

Each case runs twice: plain, for the peak resident set (``resource.getrusage`` maxrss) and
the time; and under ``tracemalloc``, for the peak of Python allocations during the feed and
what stays allocated after it (the core's state). The checkpoint's size is the encoded state.

Usage: ``python bench/memory.py [--cases ids,join,slices,categories]``; prints a table and
then JSON.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from river import compose, linear_model, preprocessing
from river.datasets import synth

from config.file import load_config_text
from stream.core import Core
from stream.events import Prediction
from stream.reference import build_profile
from stream.state import encode

BATCH = 4096
POOL = 20_000
T0 = 1_500_000_000
CONFIG = """\
models:
  loan:
    task: binary_classification
    reference: unused.jsonl
    features:
      salary: {type: numeric, min: 0}
      age: {type: numeric}
      loan: {type: numeric}
      elevel: {type: categorical}
      car: {type: categorical}
    slices: [region, elevel]
"""
Row = tuple[dict[str, Any], int, float, int]  # features, prediction, score, label


def pool(seed: int = 3) -> tuple[list[Row], list[Row]]:
    """Agrawal rows scored by a logistic regression trained on other Agrawal rows: a
    reference of 2,000 and a pool of :data:`POOL` to cycle over."""
    model = compose.Pipeline(preprocessing.StandardScaler(),
                             linear_model.LogisticRegression())
    numeric = ("salary", "age", "loan")
    for x, y in itertools.islice(synth.Agrawal(classification_function=2, seed=seed), 5_000):
        model.learn_one({k: float(x[k]) for k in (*numeric, "elevel", "car")}, y)
    rows: list[Row] = []
    draws = synth.Agrawal(classification_function=2, seed=seed + 1)
    for x, y in itertools.islice(draws, 2_000 + POOL):
        xin = {k: float(x[k]) for k in (*numeric, "elevel", "car")}
        score = float(model.predict_proba_one(xin).get(1, 0.0))
        feats: dict[str, Any] = {k: float(x[k]) for k in numeric}
        feats["elevel"], feats["car"] = str(x["elevel"]), str(x["car"])
        rows.append((feats, int(score >= 0.5), round(score, 6), int(y)))
    return rows[:2_000], rows[2_000:]


def line(i: int, row: Row, *, event_id: str | None = None, request_id: str | None = None,
         label: bool = False, region: str = "north", car: str | None = None) -> bytes:
    feats, prediction, score, y = row
    f = feats if car is None else {**feats, "car": car}
    body = (f'"type":"prediction","ts":{T0 + i},"model_id":"loan","model_version":"v1",'
            f'"features":{json.dumps(f)},"prediction":{prediction},"score":{score},'
            f'"tags":{{"region":"{region}"}}')
    if event_id is not None:
        body += f',"event_id":"{event_id}"'
    if request_id is not None:
        body += f',"request_id":"{request_id}"'
    if label:
        body += f',"label":{y}'
    return ("{" + body + "}").encode()


Maker = Callable[[int, Row], bytes]
CASES: dict[str, tuple[int, Maker, str]] = {
    "ids": (1_000_000, lambda i, r: line(i, r, event_id=f"evt-{i:08d}"),
            "1,000,000 distinct event ids"),
    "join": (1_000_000, lambda i, r: line(i, r, request_id=f"req-{i:08d}"),
             "1,000,000 pending predictions"),
    "slices": (200_000, lambda i, r: line(i, r, label=True, region=f"region-{i % 10_000}"),
               "10,000 distinct slice values"),
    "categories": (200_000, lambda i, r: line(i, r, label=True, car=f"car-{i % 1_000}"),
                   "1,000 distinct unseen categories"),
}


def batches(n: int, make: Maker, rows: list[Row]) -> Iterator[list[bytes]]:
    """The case's events, encoded a batch at a time (so that only the core's memory grows)."""
    for start in range(0, n, BATCH):
        yield [make(i, rows[i % len(rows)]) for i in range(start, min(n, start + BATCH))]


def unseen_kept(core: Core) -> int:
    """Distinct unseen categories the open window keeps, in its largest column."""
    return max(len(a.unseen_values) for a in core.models["loan"].inputs._accs.values())


def bounded(core: Core, most_unseen: int) -> dict[str, Any]:
    """The sizes and the drop counters the case is about."""
    c = core.counters()
    rt = core.models["loan"]
    perf = rt.performance
    return {
        "dedupe": c["dedupe"],
        "join": {k: c["join"][k] for k in ("pending", "waiting_outcomes", "evicted_overflow",
                                           "dropped_ids_forgotten")},
        "performance": perf.counters() if perf is not None else None,
        "most_unseen_values_kept": most_unseen,  # after any batch
        "inputs": c["inputs"]["loan"],
    }


def one(case: str, traced: bool) -> dict[str, Any]:
    """Run one case in this process."""
    n, make, _ = CASES[case]
    reference, rows = pool()
    cfg = load_config_text(CONFIG)
    ref = [Prediction(ts=float(i), model_id="loan", features=f, prediction=float(p), score=s,
                      label=float(y), model_version="v1", tags={"region": "north"})
           for i, (f, p, s, y) in enumerate(reference)]
    core = Core(cfg, {"loan": build_profile("loan", cfg.models["loan"], ref, bins=10)})
    gc.collect()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    most_unseen = 0
    for batch in batches(n, make, rows):
        core.process(batch)
        if not traced:
            most_unseen = max(most_unseen, unseen_kept(core))
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"case": case, "events": n}
    if traced:
        del batch
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.update(traced_peak_mib=round(peak / 2**20, 1),
                   traced_after_mib=round(current / 2**20, 1))
    else:
        out.update(base_rss_mib=round(base_rss / 1024, 1),
                   peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                      / 1024, 1),
                   seconds=round(elapsed, 2),
                   checkpoint_mib=round(len(encode(core.state())) / 2**20, 1),
                   bounded=bounded(core, most_unseen))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a child: one case
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.traced)))
        return
    results = []
    for case in args.cases.split(","):
        merged: dict[str, Any] = {"what": CASES[case][2]}
        for traced in (False, True):
            cmd = [sys.executable, __file__, "--one", case, *(["--traced"] if traced else [])]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            merged.update(json.loads(done.stdout.strip().splitlines()[-1]))
        results.append(merged)
    head = ("case", "events", "peak RSS MiB", "base RSS MiB", "traced peak MiB",
            "traced after MiB", "checkpoint MiB", "seconds")
    print(" | ".join(head))
    for r in results:
        print(" | ".join(str(v) for v in (
            r["case"], r["events"], r["peak_rss_mib"], r["base_rss_mib"], r["traced_peak_mib"],
            r["traced_after_mib"], r["checkpoint_mib"], r["seconds"])))
    print(json.dumps({"benchmark": "memory", "python": sys.version.split()[0],
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
