"""False alarms on a long healthy stream: a million predictions of a model that does not
change, through the whole pipeline (every monitor, triage); how many pages and alerts.

Data: river's SEA generator (``river.datasets.synth.SEA(variant=0, noise=0.05)``, a
logistic regression trained on it; 80 % of the predictions get their label as an outcome
a minute later), and the project's own ``stationary`` scenario (``sim/scenarios.py``).

Usage: ``python bench/stationary.py [--predictions 1000000] [--only river|generator]``;
prints JSON. Goal (issue 9): no page.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from river import compose, linear_model, preprocessing
from river.datasets import synth
from variants import Labelled, lines, place, replay_file

from config.file import Config, load_config
from sim.scenarios import generate, write_scenario
from stream.signals import Signal
from watchkeeper.runtime import tune_gc


def river_stream(n: int, tmp: Path) -> tuple[Config, list[bytes]]:
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in itertools.islice(synth.SEA(variant=0, noise=0.05, seed=1), 5_000):
        model.learn_one(x, y)

    def row(i: int, x: dict[int, float], y: bool, prefix: str) -> dict[str, Any]:
        score = float(model.predict_proba_one(x).get(True, 0.0))
        return {"model_id": "sea", "request_id": f"{prefix}{i}",
                "features": {str(k): float(v) for k, v in x.items()},
                "prediction": int(score >= 0.5), "score": score, "_label": int(y)}

    ref = [row(i, x, y, "ref-") for i, (x, y) in
           enumerate(itertools.islice(synth.SEA(variant=0, noise=0.05, seed=2), 5_000))]
    (tmp / "ref.jsonl").write_text("".join(json.dumps(
        {**{k: v for k, v in r.items() if k != "_label"}, "type": "prediction",
         "ts": 1_500_000_000 + i, "label": r["_label"]}) + "\n" for i, r in enumerate(ref)))
    (tmp / "sea.yaml").write_text(yaml.safe_dump({"models": {"sea": {
        "task": "binary_classification", "reference": "ref.jsonl",
        "performance": {"metric": "accuracy", "max_drop": 0.02}}}}))
    rng = random.Random(3)
    rows = []
    for i, (x, y) in enumerate(itertools.islice(synth.SEA(variant=0, noise=0.05, seed=4), n)):
        r = row(i, x, y, "r")
        label = r.pop("_label")
        rows.append(Labelled(r, label, "outcome" if rng.random() < 0.8 else "none"))
    return load_config(tmp / "sea.yaml"), lines(place(rows, every=1.0, delay=60.0))


def generator_stream(n: int, tmp: Path) -> tuple[Config, list[bytes]]:
    sc = generate("stationary", predictions=n, seed=11)
    files = write_scenario(sc, tmp / "stationary.jsonl")
    return load_config(files.config), files.events.read_bytes().splitlines()


def _count_into(kinds: Counter[str]) -> Callable[[Signal], None]:
    def count(signal: Signal) -> None:
        kinds[str(signal.kind)] += 1

    return count


def main() -> None:
    tune_gc()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=1_000_000)
    ap.add_argument("--only", choices=("river", "generator"))
    args = ap.parse_args()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("river SEA(variant=0, noise=0.05)", river_stream),
                            ("generator stationary (seed 11)", generator_stream)):
            if args.only and not name.startswith(args.only):
                continue
            started = time.perf_counter()
            config, messages = build(args.predictions, Path(tmp))
            built = time.perf_counter() - started
            kinds: Counter[str] = Counter()
            pipeline, pages = replay_file(config, messages, on_signal=_count_into(kinds))
            out.append({"data": name, "predictions": args.predictions,
                        "events": len(messages), "pages": len(pages),
                        "page_findings": [list(p[1:6]) for p in pages],
                        "signals_by_kind": dict(kinds), "alerts": len(pipeline.triage.alerts),
                        "incidents": len(pipeline.triage.incidents),
                        "build_seconds": round(built, 1),
                        "replay_seconds": round(time.perf_counter() - started - built, 1)})
    print(json.dumps({"benchmark": "stationary", "goal": "no page", "streams": out},
                     indent=2))


if __name__ == "__main__":
    main()
