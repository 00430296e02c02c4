"""Benchmark of the monitoring core: events/second, one process, full monitor set.

Generates the seeded ``stationary`` scenario (20 features; predictions with inline labels,
delayed outcomes and business metrics), then measures in the same run on the same lines:

- ``decode_only``: msgspec decoding and validation alone (the floor of any consumer);
- ``core``: decode, validate, dedupe, and every monitor (schema, quality, drift, prediction
  and label drift, delayed-label join, performance overall/per slice/per version, business).

Usage: ``python bench/core.py [--predictions N] [--repeat R] [--batch B]``; prints JSON.
Goal (issue 2): core >= 100,000 events/s (<= 10 us per event).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import msgspec

from config.file import load_config
from sim.scenarios import generate, write_scenario
from stream.core import Core
from stream.events import EventDecoder
from stream.reference import load_profiles
from watchkeeper.runtime import GC_GEN0_THRESHOLD, tune_gc


def main() -> None:
    tune_gc()  # as the CLI and the worker do
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--scenario", default="stationary")
    args = ap.parse_args()

    scenario = generate(args.scenario, predictions=args.predictions, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_scenario(scenario, Path(tmp) / "bench.jsonl")
        config = load_config(files.config)
        profiles = load_profiles(config)
        lines = [line for line in files.events.read_bytes().split(b"\n") if line]
    n = len(lines)
    batches = [lines[i:i + args.batch] for i in range(0, n, args.batch)]

    core_best = float("inf")
    signals = 0
    for _ in range(args.repeat):
        core = Core(config, profiles)
        t0 = time.perf_counter()
        signals = 0
        for batch in batches:
            signals += len(core.process(batch).signals)
        core_best = min(core_best, time.perf_counter() - t0)

    decoder = EventDecoder(config.models)
    decode_best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for line in lines:
            decoder.decode(line)
        decode_best = min(decode_best, time.perf_counter() - t0)

    n_features = len(next(iter(profiles.values())).features)
    print(json.dumps({
        "benchmark": "core",
        "scenario": args.scenario,
        "events": n,
        "features": n_features,
        "batch": args.batch,
        "repeat": args.repeat,
        "decode_only_events_per_s": round(n / decode_best),
        "core_events_per_s": round(n / core_best),
        "core_us_per_event": round(core_best / n * 1e6, 3),
        "decode_us_per_event": round(decode_best / n * 1e6, 3),
        "core_to_decode_ratio": round(decode_best / core_best, 3),
        "signals": signals,
        "goal_events_per_s": 100_000,
        "goal_met": n / core_best >= 100_000,
        "gc_gen0_threshold": GC_GEN0_THRESHOLD,
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
