"""The in-process runner: drives the core over a JSON Lines file in file order.

I/O lives here (and in the CLI), not in the core: the runner reads lines in blocks, hands
them to :class:`stream.core.Core` in batches, and passes what comes out to callbacks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from stream.core import BatchResult, Core
from stream.events import Reject
from stream.signals import Signal

READ_BLOCK = 4 * 1024 * 1024
BATCH_LINES = 4096


def iter_batches(
    stream: BinaryIO, batch_lines: int = BATCH_LINES, on_bytes: Callable[[int], None] | None = None
) -> Iterator[list[bytes]]:
    """Yield lists of non-blank lines (without line endings) from a binary stream."""
    rest = b""
    batch: list[bytes] = []
    while True:
        block = stream.read(READ_BLOCK)
        if on_bytes is not None and block:
            on_bytes(len(block))
        if not block:
            break
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.strip():
                batch.append(line.rstrip(b"\r"))
                if len(batch) >= batch_lines:
                    yield batch
                    batch = []
    if rest.strip():
        batch.append(rest.rstrip(b"\r"))
    if batch:
        yield batch


@dataclass
class ReplayReport:
    """What a replay did: counts that add up (``events_read = accepted + duplicates +
    rejected``), signals by kind, and the delayed-label join's counters."""

    events_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0
    core: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. alerts, incidents, pages

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": {"total": sum(self.rejected.values()),
                         "by_reason": dict(sorted(self.rejected.items()))},
            "signals": {"total": sum(self.signals.values()),
                        "by_kind": dict(sorted(self.signals.items()))},
            "accepted_by_type": self.core.get("accepted", {}),
            "join": self.core.get("join", {}),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "events_per_second": round(self.events_read / self.elapsed_seconds)
            if self.elapsed_seconds > 0 else None,
            **self.extra,
        }


def replay(
    path: Path,
    core: Core,
    *,
    on_signal: Callable[[Signal], None] | None = None,
    on_reject: Callable[[int, Reject], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    batch_lines: int = BATCH_LINES,
    process: Callable[[list[bytes]], BatchResult] | None = None,
) -> ReplayReport:
    """Run ``core`` over the events file at ``path``; raises OSError if it cannot be read.

    ``process`` replaces ``core.process`` (e.g. a pipeline that also triages and stores).
    """
    report = ReplayReport()
    start = time.perf_counter()
    step = process or core.process
    with path.open("rb") as fh:
        for batch in iter_batches(fh, batch_lines, on_bytes):
            result = step(batch)
            report.accepted += result.accepted
            report.duplicates += result.duplicates
            for seq, reject in result.rejects:
                report.rejected[str(reject.reason)] += 1
                if on_reject is not None:
                    on_reject(seq, reject)
            for sig in result.signals:
                report.signals[str(sig.kind)] += 1
                if on_signal is not None:
                    on_signal(sig)
    report.events_read = core.processed
    report.elapsed_seconds = time.perf_counter() - start
    report.core = core.counters()
    return report
