"""The delayed-label join: predictions wait here for their outcome, within bounds.

Memory is bounded twice: by a TTL in event time and by a size limit; what either bound
pushes out is counted, as are outcomes that find no prediction.

>>> j = LabelJoin(ttl_seconds=10.0, max_pending=2)
>>> j.add("a", ("pa",), ts=0.0); j.add("b", ("pb",), ts=1.0); j.add("c", ("pc",), ts=2.0)
>>> j.match("a"), j.match("b"), j.evicted
(None, ('pb',), 1)
>>> j.expire(now=20.0); j.expired, len(j)
(1, 0)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LabelJoin:
    """Pending predictions keyed by ``(model_id, request_id)``, oldest first."""

    def __init__(self, ttl_seconds: float, max_pending: int) -> None:
        if ttl_seconds <= 0 or max_pending < 1:
            raise ValueError("ttl_seconds must be > 0 and max_pending >= 1")
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self._pending: OrderedDict[Any, tuple[float, tuple[Any, ...]]] = OrderedDict()
        self.added = 0
        self.matched = 0
        self.unmatched = 0
        self.expired = 0
        self.evicted = 0
        self.replaced = 0

    def add(self, key: Any, row: tuple[Any, ...], ts: float) -> None:
        pending = self._pending
        if key in pending:
            self.replaced += 1
            del pending[key]
        pending[key] = (ts, row)
        self.added += 1
        if len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.evicted += 1

    def add_many(self, keys: list[Any], rows: list[tuple[Any, ...]], ts: list[float]) -> None:
        """:meth:`add` for a batch (a re-sent key keeps its place and takes the new row)."""
        pending = self._pending
        before = len(pending)
        for key, row, t in zip(keys, rows, ts, strict=True):
            pending[key] = (t, row)
        self.added += len(keys)
        self.replaced += before + len(keys) - len(pending)
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.evicted += 1

    def match(self, key: Any) -> tuple[Any, ...] | None:
        hit = self._pending.pop(key, None)
        if hit is None:
            self.unmatched += 1
            return None
        self.matched += 1
        return hit[1]

    def expire(self, now: float) -> None:
        """Drop predictions older than the TTL at event time ``now``."""
        pending = self._pending
        horizon = now - self.ttl_seconds
        while pending:
            ts = next(iter(pending.values()))[0]
            if ts >= horizon:
                break
            pending.popitem(last=False)
            self.expired += 1

    def __len__(self) -> int:
        return len(self._pending)

    def counters(self) -> dict[str, int]:
        return {
            "pending": len(self._pending),
            "added": self.added,
            "matched": self.matched,
            "unmatched_outcomes": self.unmatched,
            "expired": self.expired,
            "evicted_overflow": self.evicted,
            "replaced": self.replaced,
        }
