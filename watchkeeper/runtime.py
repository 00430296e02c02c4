"""Process-level tuning shared by every long-running entry point (CLI, worker, benchmarks)."""

from __future__ import annotations

import gc

# Decoding creates one feature dict per event; with CPython's default threshold (700) the
# young-generation collector runs every few hundred events and scans them all again. Events
# hold no reference cycles, so collecting young objects rarely costs nothing in memory and
# saves about 1.5 us per event (bench/core.py).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Raise the young-generation GC threshold for high-volume event processing.

    >>> tune_gc(); gc.get_threshold()[0] == GC_GEN0_THRESHOLD
    True
    """
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
