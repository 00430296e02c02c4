"""The delayed-label join: predictions wait here for their outcome, within bounds.

An outcome that comes before its prediction waits for it too: the two arrive on different
topics, and a worker catching up on a backlog can read the outcomes topic ahead of the
predictions one. A pair is matched when its second half arrives; it counts at the index
(``seq``) of that one. Memory is bounded twice, on both sides: by a TTL in event time and by
a size limit; what either bound pushes out is counted, as are outcomes that find no
prediction. Matching obeys event order and the TTL, so results do not depend on how the
stream was cut into batches, with one exception at the bounds: a batch adds its predictions
before it matches its outcomes, so an outcome that came before its prediction *in the same
batch* is matched even where, cut otherwise, the size bound or the TTL (checked at the end
of a batch) would have pushed the one or the other out first.

>>> j = LabelJoin(ttl_seconds=10.0, max_pending=2)
>>> j.add_many(["a", "b", "c"], [("pa",), ("pb",), ("pc",)], [0.0, 1.0, 2.0], [0, 1, 2])
[]
>>> j.match("a", now=3.0, seq=3), j.match("b", now=3.0, seq=4), j.evicted
(None, (('pb',), 4), 1)
>>> j.match("c", now=30.0, seq=5), j.expired
(None, 1)
>>> j.match("d", now=31.0, seq=6, outcome="yes"), j.waiting  # "a" was evicted: it waits too
(None, 2)
>>> j.add_many(["d"], [("pd",)], [31.0], [7])  # d's outcome was waiting: matched at 7
[(0, 'yes', 7)]
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LabelJoin:
    """Pending predictions keyed by ``request_id``, oldest first; and outcomes waiting for
    their prediction."""

    def __init__(self, ttl_seconds: float, max_pending: int) -> None:
        if ttl_seconds <= 0 or max_pending < 1:
            raise ValueError("ttl_seconds must be > 0 and max_pending >= 1")
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self._pending: OrderedDict[Any, tuple[float, int, tuple[Any, ...]]] = OrderedDict()
        # outcomes before their prediction: key -> (watermark at its arrival, seq, outcome)
        self._early: OrderedDict[Any, tuple[float, int, Any]] = OrderedDict()
        self.added = 0
        self.matched = 0
        self.unmatched = 0
        self.expired = 0
        self.evicted = 0
        self.replaced = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Checkpoints written before outcomes could wait load with none waiting."""
        self.__dict__.update(state)
        self.__dict__.setdefault("_early", OrderedDict())

    @property
    def waiting(self) -> int:
        """Outcomes waiting for their prediction."""
        return len(self._early)

    def add_many(self, keys: list[Any], rows: list[tuple[Any, ...]], ts: list[float],
                 seqs: list[int]) -> list[tuple[int, Any, int]]:
        """Add predictions (a re-sent key keeps its place and takes the new row).

        Returns ``(position, outcome, seq)`` for each prediction whose outcome was waiting:
        matched at once (unless the TTL at the outcome's arrival had passed it), not added.
        """
        early = self._early
        done: list[tuple[int, Any, int]] = []
        if early:
            ttl = self.ttl_seconds
            fresh = []
            for i, key in enumerate(keys):
                found = early.pop(key, None)
                if found is None:
                    fresh.append(i)
                elif ts[i] < found[0] - ttl:  # as an outcome finding an expired prediction
                    self.expired += 1
                    self.unmatched += 1
                else:
                    self.matched += 1
                    done.append((i, found[2], seqs[i]))
            self.added += len(keys) - len(fresh)
            if len(fresh) < len(keys):
                keys = [keys[i] for i in fresh]
                rows = [rows[i] for i in fresh]
                ts = [ts[i] for i in fresh]
                seqs = [seqs[i] for i in fresh]
        pending = self._pending
        before = len(pending)
        for key, row, t, s in zip(keys, rows, ts, seqs, strict=True):
            pending[key] = (t, s, row)
        self.added += len(keys)
        self.replaced += before + len(keys) - len(pending)
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.evicted += 1
        return done

    def match(self, key: Any, now: float, seq: int,
              outcome: Any = None) -> tuple[tuple[Any, ...], int] | None:
        """The pending prediction for an outcome at event time ``now`` and index ``seq``,
        and the index the pair counts at; see :meth:`match_many`."""
        return self.match_many([key], [now], [seq], [outcome])[0]

    def match_many(self, keys: list[Any], now: list[float], seqs: list[int],
                   outcomes: list[Any]) -> list[tuple[tuple[Any, ...], int] | None]:
        """For each outcome in turn (in event order), its pending prediction and the index
        the pair counts at (the later of the two: a prediction of the same batch can come
        after its outcome); None if there is none yet, and the outcome waits for it. A
        prediction older than the TTL at ``now`` is dropped as expired (and the outcome
        waits, as it would have had the prediction been dropped at a batch's end).

        >>> j = LabelJoin(ttl_seconds=10.0, max_pending=5)
        >>> j.add_many(["a", "b", "c"], [("pa",), ("pb",), ("pc",)], [0.0, 1.0, 15.0], [0, 1, 9])
        []
        >>> j.match_many(["a", "a", "b", "c"], [2.0, 2.0, 20.0, 20.0], [2, 3, 4, 5], [1, 1, 1, 1])
        [(('pa',), 2), None, None, (('pc',), 9)]
        >>> j.matched, j.unmatched, j.expired, j.waiting  # the second "a" and "b" wait
        (2, 0, 1, 2)
        """
        pending = self._pending
        early = self._early
        ttl = self.ttl_seconds
        out: list[tuple[tuple[Any, ...], int] | None] = []
        for key, t, s, outcome in zip(keys, now, seqs, outcomes, strict=True):
            hit = pending.pop(key, None)
            if hit is not None and hit[0] < t - ttl:
                # expired: as if it had been dropped before (the batch's end may have)
                self.expired += 1
                hit = None
            if hit is not None:
                self.matched += 1
                out.append((hit[2], max(s, hit[1])))
                continue
            out.append(None)
            if key in early:  # one outcome per prediction: the first one waits
                self.unmatched += 1
                continue
            early[key] = (t, s, outcome)
            if len(early) > self.max_pending:
                early.popitem(last=False)
                self.unmatched += 1
        return out

    def expire(self, now: float) -> None:
        """Drop predictions older than the TTL at event time ``now``, and outcomes that
        waited for theirs longer than it (they are unmatched)."""
        horizon = now - self.ttl_seconds
        pending = self._pending
        while pending and next(iter(pending.values()))[0] < horizon:
            pending.popitem(last=False)
            self.expired += 1
        early = self._early
        while early and next(iter(early.values()))[0] < horizon:
            early.popitem(last=False)
            self.unmatched += 1

    def __len__(self) -> int:
        return len(self._pending)

    def counters(self) -> dict[str, int]:
        return {
            "pending": len(self._pending),
            "waiting_outcomes": len(self._early),
            "added": self.added,
            "matched": self.matched,
            "unmatched_outcomes": self.unmatched,
            "expired": self.expired,
            "evicted_overflow": self.evicted,
            "replaced": self.replaced,
        }
