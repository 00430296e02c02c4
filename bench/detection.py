"""What the performance test can detect, and how fast: the CUSUM of ``stream.monitors``
measured on labelled predictions whose errors are Bernoulli draws at a known rate.

For a model of reference accuracy ``A`` and tolerance ``max_drop`` ``D``, it reports the
median and 90th percentile of the number of labels from the onset of a sustained fall to
the alarm, for falls to ``A - 1.5 D`` and ``A - 2 D`` (and from 0.944 to
0.915 and to 0.88 with D = 0.02), and how many alarms a model as good as its reference
raises in a million labels (``--stationary``; Lorden's bound says at most one per
``exp(h)`` labels on average), also for a model that sits half its tolerance below a lucky
reference; ``alarm_episodes`` counts the alarms more than 2,000 labels after the sum was
last at its threshold (closer ones are the same alert, or a flap of it, and page once).
The CUSUM is set up as the monitor sets it up for a reference of ``--reference-rows``
labelled rows: the healthy baseline one standard error worse than
the reference, the line ``max_drop`` and :func:`stream.monitors.performance.reference_margin`
beyond it.

Usage: ``python bench/detection.py [--runs 41] [--stationary 1000000] [--h 14]
[--reference-rows 5000]``; prints JSON. Data: simulated Bernoulli errors (seeded).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from config.file import PerformanceSettings
from stream.monitors.cusum import Cusum
from stream.monitors.performance import reference_margin

# labels between two alarms for the second to be a new alert and page (the default flap
# window is 20 evaluations of 100 labels)
EPISODE_GAP = 2_000


def chart(accuracy: float, max_drop: float, h: float, rows: int) -> Cusum:
    """The CUSUM the monitor runs for a reference of ``rows`` labels at ``accuracy``."""
    err = 1 - accuracy
    se = math.sqrt(err * accuracy / rows)
    return Cusum.bernoulli(err + se, err + max_drop + reference_margin(se, max_drop), h)


def delay(c: Cusum, p_err: float, h: float, rng: np.random.Generator,
          limit: int = 200_000) -> int | None:
    """Labels from the onset of a fall to error rate ``p_err`` until the alarm."""
    seen = 0
    while seen < limit:
        path = c.path((rng.random(10_000) < p_err).astype(np.float64))
        hit = next((i for i, v in enumerate(path) if v >= h), None)
        if hit is not None:
            return seen + hit + 1
        seen += len(path)
    return None


def summary(delays: list[int | None]) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    return {"median": float(np.median(found)) if found else None,
            "p90": float(np.percentile(found, 90)) if found else None,
            "not_found": len(delays) - len(found)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=41)
    ap.add_argument("--stationary", type=int, default=1_000_000)
    ap.add_argument("--h", type=float, default=PerformanceSettings().cusum_h)
    ap.add_argument("--reference-rows", type=int, default=5_000)
    args = ap.parse_args()
    rows = args.reference_rows
    rng = np.random.default_rng(2026)
    cases = [(0.944, 0.02, 0.915), (0.944, 0.02, 0.88)]
    for acc in (0.99, 0.94, 0.85, 0.70):
        for d in (0.01, 0.02, 0.05):
            cases += [(acc, d, acc - 1.5 * d), (acc, d, acc - 2 * d)]
    falls = []
    for acc, d, to in cases:
        falls.append({"reference_accuracy": acc, "max_drop": d, "falls_to": round(to, 4),
                      "labels_to_page": summary([delay(chart(acc, d, args.h, rows), 1 - to,
                                                       args.h, rng)
                                                 for _ in range(args.runs)])})
    stationary = []
    for acc, below in ((0.99, 0.0), (0.944, 0.0), (0.85, 0.0), (0.70, 0.0), (0.944, 0.01)):
        c = chart(acc, 0.02, args.h, rows)
        alarms, episodes, above, last, peak, k = 0, 0, False, -EPISODE_GAP, 0.0, 0
        for _ in range(args.stationary // 100_000):
            for v in c.path((rng.random(100_000) < 1 - acc + below).astype(np.float64)):
                peak = max(peak, v)
                if v >= args.h:
                    if not above:
                        alarms += 1
                        episodes += k - last > EPISODE_GAP  # else the same alert, or a flap
                    last = k
                above = v >= args.h
                k += 1
        stationary.append({"reference_accuracy": acc, "max_drop": 0.02,
                           "model_below_reference": below, "labels": args.stationary,
                           "alarms": alarms, "alarm_episodes": episodes,
                           "highest_cusum": round(peak, 2)})
    print(json.dumps({"benchmark": "detection", "h": args.h, "runs": args.runs,
                      "reference_rows": rows, "data": "simulated Bernoulli errors, seeded",
                      "falls": falls, "stationary": stationary}, indent=2))


if __name__ == "__main__":
    main()
