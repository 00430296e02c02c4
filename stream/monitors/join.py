"""The delayed-label join: predictions wait here for their outcome, within bounds.

Memory is bounded twice: by a TTL in event time and by a size limit; what either bound
pushes out is counted, as are outcomes that find no prediction. Matching obeys event order
and the TTL at the outcome's own moment, so results do not depend on how the stream was
cut into batches.

>>> j = LabelJoin(ttl_seconds=10.0, max_pending=2)
>>> j.add_many(["a", "b", "c"], [("pa",), ("pb",), ("pc",)], [0.0, 1.0, 2.0], [0, 1, 2])
>>> j.match("a", now=3.0, seq=3), j.match("b", now=3.0, seq=4), j.evicted
(None, ('pb',), 1)
>>> j.match("c", now=30.0, seq=5), j.expired
(None, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LabelJoin:
    """Pending predictions keyed by ``request_id``, oldest first."""

    def __init__(self, ttl_seconds: float, max_pending: int) -> None:
        if ttl_seconds <= 0 or max_pending < 1:
            raise ValueError("ttl_seconds must be > 0 and max_pending >= 1")
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self._pending: OrderedDict[Any, tuple[float, int, tuple[Any, ...]]] = OrderedDict()
        self.added = 0
        self.matched = 0
        self.unmatched = 0
        self.expired = 0
        self.evicted = 0
        self.replaced = 0

    def add_many(self, keys: list[Any], rows: list[tuple[Any, ...]], ts: list[float],
                 seqs: list[int]) -> None:
        """Add predictions (a re-sent key keeps its place and takes the new row)."""
        pending = self._pending
        before = len(pending)
        for key, row, t, s in zip(keys, rows, ts, seqs, strict=True):
            pending[key] = (t, s, row)
        self.added += len(keys)
        self.replaced += before + len(keys) - len(pending)
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.evicted += 1

    def match(self, key: Any, now: float, seq: int) -> tuple[Any, ...] | None:
        """The pending prediction for an outcome at event time ``now`` and index ``seq``.

        A prediction that arrives after its outcome (a higher ``seq``) stays pending; one
        older than the TTL at ``now`` is dropped as expired.
        """
        return self.match_many([key], [now], [seq])[0]

    def match_many(self, keys: list[Any], now: list[float],
                   seqs: list[int]) -> list[tuple[Any, ...] | None]:
        """:meth:`match` for each outcome in turn (in event order).

        >>> j = LabelJoin(ttl_seconds=10.0, max_pending=5)
        >>> j.add_many(["a", "b"], [("pa",), ("pb",)], [0.0, 1.0], [0, 1])
        >>> j.match_many(["a", "a", "b", "c"], [2.0, 2.0, 20.0, 20.0], [2, 3, 4, 5])
        [('pa',), None, None, None]
        >>> j.matched, j.unmatched, j.expired
        (1, 3, 1)
        """
        pending = self._pending
        ttl = self.ttl_seconds
        out: list[tuple[Any, ...] | None] = []
        for key, t, s in zip(keys, now, seqs, strict=True):
            hit = pending.get(key)
            if hit is None or hit[1] > s:
                self.unmatched += 1
                out.append(None)
                continue
            del pending[key]
            if hit[0] < t - ttl:
                self.expired += 1
                self.unmatched += 1
                out.append(None)
                continue
            self.matched += 1
            out.append(hit[2])
        return out

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
