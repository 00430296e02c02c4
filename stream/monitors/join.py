"""The delayed-label join: predictions wait here for their outcome, within bounds, and every
outcome's fate is told, so that a join that stops working cannot go unnoticed.

A pair matches when the outcome's event time is at most ``ttl_seconds`` after its
prediction's: a rule on the pair's own times, so it does not depend on how the two topics
were interleaved, on the traffic rate, or on how far a worker reads one topic ahead of the
other. Memory is bounded by size first (``max_pending`` predictions waiting, oldest pushed
out first), then by time: a prediction is dropped once the *outcomes* have moved more than
the TTL past it (any outcome still to come would be too late), never because predictions
ran ahead. An outcome that comes before its prediction (a worker reading the outcomes
topic ahead) waits for it, until the *predictions* have moved ``wait_seconds`` past it
(at most ``max_pending`` of them wait, the oldest given up first: ``waiting_evicted``).

Every outcome ends in one fate, recorded for the health monitor
(:mod:`stream.monitors.health`): ``matched``; ``late`` (its prediction was there but more
than the TTL before it, or was dropped for that); ``evicted`` (its prediction was pushed
out by the size bound); ``unknown`` (no prediction with its ``request_id`` came). The keys
of the last ``remember_dropped`` dropped predictions are remembered to tell the three
apart (``forgotten`` counts those pushed out of that memory: a label for one of them is
told ``unknown``).

Matching obeys event order, so results do not depend on how the stream was cut into
batches, but at the bounds: a batch adds its predictions before it matches its outcomes,
so an outcome that came before its prediction *in the same batch* is matched even where,
cut otherwise, the size bound or the wait would have pushed one of them out first.

>>> j = LabelJoin(ttl_seconds=10.0, max_pending=2)
>>> j.add_many(["a", "b", "c"], [("pa",), ("pb",), ("pc",)], [0.0, 1.0, 2.0], [0, 1, 2])
[]
>>> j.match("a", now=3.0, seq=3), j.match("b", now=3.0, seq=4), j.evicted
(None, (('pb',), 4), 1)
>>> j.match("c", now=30.0, seq=5), j.late  # 28 s after its prediction: too late
(None, 1)
>>> [fate for _, _, fate, _ in j.fates]
['evicted', 'matched', 'late']
>>> j.match("d", now=31.0, seq=6, outcome="yes"), j.waiting  # no prediction yet: waits
(None, 1)
>>> j.add_many(["d"], [("pd",)], [31.0], [7])  # d's outcome was waiting: matched at 7
[(0, 'yes', 7)]
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from stream.state import State, check

_COUNTERS = ("added", "matched", "unmatched", "late", "after_eviction", "expired",
             "evicted", "replaced", "waiting_evicted", "forgotten")
LATENESS_SAMPLES = 1_000

# An outcome's fate: (seq at which it was decided, event time, fate, seconds after its
# prediction or None)
Fate = tuple[int, float, str, float | None]


class LabelJoin:
    """Pending predictions keyed by ``request_id``, oldest first; and outcomes waiting for
    their prediction.

    Parameters
    ----------
    ttl_seconds
        How long after its prediction (event time) an outcome still counts.
    max_pending
        Predictions (and, apart, outcomes) that may wait at once; the oldest go first.
    wait_seconds
        How far the predictions may move past an outcome that waits for its own before it
        is given up (a prediction comes before its outcome, but producers' clocks differ).
    remember_dropped
        Keys of predictions dropped unanswered that are remembered, to tell the fate of an
        outcome that comes for one of them.
    keep_fates
        Record each outcome's fate in :attr:`fates` for :meth:`take_fates` (False where
        nobody takes them: they would pile up).
    """

    def __init__(self, ttl_seconds: float, max_pending: int, wait_seconds: float = 3600.0,
                 remember_dropped: int = 50_000, keep_fates: bool = True) -> None:
        if ttl_seconds <= 0 or max_pending < 1 or wait_seconds < 0 or remember_dropped < 1:
            raise ValueError("ttl_seconds must be > 0, max_pending >= 1, wait_seconds >= 0, "
                             "remember_dropped >= 1")
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self.wait_seconds = wait_seconds
        self.remember_dropped = remember_dropped
        self.keep_fates = keep_fates
        self._pending: OrderedDict[Any, tuple[float, int, tuple[Any, ...]]] = OrderedDict()
        # outcomes before their prediction: key -> (its event time, seq, outcome)
        self._early: OrderedDict[Any, tuple[float, int, Any]] = OrderedDict()
        # keys of predictions dropped unanswered: key -> (why, the prediction's time)
        self._dropped: OrderedDict[Any, tuple[str, float]] = OrderedDict()
        self.pred_clock = float("-inf")  # the latest prediction time seen
        self.out_clock = float("-inf")  # the latest outcome time seen
        self.first_ts: float | None = None  # the first prediction that waited here
        self.fates: list[Fate] = []  # since the health monitor last took them
        self.lateness: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self.added = 0
        self.matched = 0
        self.unmatched = 0
        self.late = 0
        self.after_eviction = 0
        self.expired = 0
        self.evicted = 0
        self.replaced = 0
        self.waiting_evicted = 0  # outcomes given up for the size bound
        self.forgotten = 0  # keys pushed out of the memory of dropped predictions

    @property
    def waiting(self) -> int:
        """Outcomes waiting for their prediction."""
        return len(self._early)

    def _fate(self, seq: int, t: float, fate: str, lateness: float | None = None) -> None:
        if self.keep_fates:
            self.fates.append((seq, t, fate, lateness))
        if fate == "late" and lateness is not None:
            self.lateness.append(lateness)

    def _drop(self, key: Any, why: str, t: float) -> None:
        dropped = self._dropped
        dropped[key] = (why, t)
        while len(dropped) > self.remember_dropped:
            dropped.popitem(last=False)
            self.forgotten += 1

    def add_many(self, keys: list[Any], rows: list[tuple[Any, ...]], ts: list[float],
                 seqs: list[int]) -> list[tuple[int, Any, int]]:
        """Add predictions in order (a re-sent key keeps its place and takes the new row).

        Returns ``(position, outcome, seq)`` for each prediction whose outcome was waiting
        and is in time: matched at once, not added.
        """
        pending, early = self._pending, self._early
        done: list[tuple[int, Any, int]] = []
        ttl = self.ttl_seconds
        if keys and self.first_ts is None:
            self.first_ts = ts[0]
        for i, (key, row, t, s) in enumerate(zip(keys, rows, ts, seqs, strict=True)):
            if t > self.pred_clock:
                self.pred_clock = t
                self._give_up_waiting(s)
            self.added += 1
            if early:
                found = early.pop(key, None)
                if found is not None:
                    if found[0] - t > ttl:
                        self.late += 1
                        self.unmatched += 1
                        self._fate(s, found[0], "late", found[0] - t)
                    else:
                        self.matched += 1
                        self._fate(s, found[0], "matched")
                        done.append((i, found[2], s))
                    continue
            if key in pending:
                self.replaced += 1
            pending[key] = (t, s, row)
            while len(pending) > self.max_pending:  # (while: a restore under a smaller bound)
                old, (old_t, _, _) = pending.popitem(last=False)
                self.evicted += 1
                self._drop(old, "evicted", old_t)
        return done

    def _give_up_waiting(self, seq: int) -> None:
        """Outcomes the predictions have moved ``wait_seconds`` past: no prediction."""
        early = self._early
        horizon = self.pred_clock - self.wait_seconds
        while early and next(iter(early.values()))[0] < horizon:
            _, (t, _, _) = early.popitem(last=False)
            self.unmatched += 1
            self._fate(seq, t, "unknown")

    def _expire(self) -> None:
        """Predictions the outcomes have moved the TTL past: any label still to come would
        be too late."""
        pending = self._pending
        horizon = self.out_clock - self.ttl_seconds
        while pending and next(iter(pending.values()))[0] < horizon:
            key, (t, _, _) = pending.popitem(last=False)
            self.expired += 1
            self._drop(key, "expired", t)

    def match(self, key: Any, now: float, seq: int,
              outcome: Any = None) -> tuple[tuple[Any, ...], int] | None:
        """The pending prediction for an outcome at event time ``now`` and index ``seq``,
        and the index the pair counts at; see :meth:`match_many`."""
        return self.match_many([key], [now], [seq], [outcome])[0]

    def match_many(self, keys: list[Any], now: list[float], seqs: list[int],
                   outcomes: list[Any]) -> list[tuple[tuple[Any, ...], int] | None]:
        """For each outcome in turn (in event order, ``now`` its own event time), its
        pending prediction and the index the pair counts at (the later of the two: a
        prediction of the same batch can come after its outcome); None if there is none in
        time. An outcome whose prediction has not come waits for it.

        >>> j = LabelJoin(ttl_seconds=10.0, max_pending=5)
        >>> j.add_many(["a", "b", "c"], [("pa",), ("pb",), ("pc",)], [0.0, 1.0, 15.0], [0, 1, 9])
        []
        >>> j.match_many(["a", "a", "b", "c"], [2.0, 2.0, 20.0, 20.0], [2, 3, 4, 5], [1, 1, 1, 1])
        [(('pa',), 2), None, None, (('pc',), 9)]
        >>> j.matched, j.late, j.expired, j.waiting  # the second "a" waits; "b" came late
        (2, 1, 1, 1)
        """
        pending, early, dropped = self._pending, self._early, self._dropped
        ttl = self.ttl_seconds
        out: list[tuple[tuple[Any, ...], int] | None] = []
        for key, t, s, outcome in zip(keys, now, seqs, outcomes, strict=True):
            if t > self.out_clock:
                self.out_clock = t
                self._expire()
            hit = pending.pop(key, None)
            if hit is not None:
                if t - hit[0] > ttl:
                    self.late += 1
                    self.unmatched += 1
                    self._fate(s, t, "late", t - hit[0])
                    out.append(None)
                else:
                    self.matched += 1
                    self._fate(s, t, "matched")
                    out.append((hit[2], max(s, hit[1])))
                continue
            out.append(None)
            gone = dropped.pop(key, None)
            if gone is not None:  # its prediction was dropped: for the TTL or the size
                self.unmatched += 1
                if gone[0] == "expired":
                    self.late += 1
                    self._fate(s, t, "late", t - gone[1])
                else:
                    self.after_eviction += 1
                    self._fate(s, t, "evicted")
                continue
            if key in early:  # one outcome per prediction: the first one waits
                self.unmatched += 1
                self._fate(s, t, "unknown")
                continue
            early[key] = (t, s, outcome)
            while len(early) > self.max_pending:
                _, (old_t, _, _) = early.popitem(last=False)
                self.waiting_evicted += 1
                self.unmatched += 1
                self._fate(s, old_t, "unknown")
        return out

    def state(self) -> State:
        """What waits, what was dropped, the clocks and counters, as plain data (rows and
        outcomes as lists; :meth:`restore` turns them back with the caller's functions)."""
        return {
            "kind": "join", "v": 1,
            "pending": [[k, t, s, list(row)] for k, (t, s, row) in self._pending.items()],
            "early": [[k, t, s, outcome] for k, (t, s, outcome) in self._early.items()],
            "dropped": [[k, why, t] for k, (why, t) in self._dropped.items()],
            "pred_clock": self.pred_clock, "out_clock": self.out_clock,
            "first_ts": self.first_ts, "lateness": list(self.lateness),
            "counters": {name: getattr(self, name) for name in _COUNTERS},
        }

    def restore(self, state: State, row: Callable[[Any], tuple[Any, ...]],
                outcome: Callable[[Any], Any]) -> None:
        """Resume from :meth:`state` (bounds are the current configuration's: what is over
        them is dropped at the next event); ``row`` and ``outcome`` rebuild what waits."""
        state = check(state, "join", 1)
        self._pending = OrderedDict((k, (float(t), int(s), row(r)))
                                    for k, t, s, r in state["pending"])
        self._early = OrderedDict((k, (float(t), int(s), outcome(o)))
                                  for k, t, s, o in state["early"])
        self._dropped = OrderedDict((k, (str(why), float(t))) for k, why, t in state["dropped"])
        self.pred_clock, self.out_clock = float(state["pred_clock"]), float(state["out_clock"])
        self.first_ts = None if state["first_ts"] is None else float(state["first_ts"])
        self.lateness = deque((float(x) for x in state["lateness"]), maxlen=LATENESS_SAMPLES)
        for name in _COUNTERS:  # (a checkpoint older than a counter: from 0)
            setattr(self, name, int(state["counters"].get(name, 0)))
        self.fates = []

    def take_fates(self) -> list[Fate]:
        """The fates recorded since the last call, in event order."""
        fates, self.fates = self.fates, []
        fates.sort(key=lambda f: f[0])
        return fates

    def __len__(self) -> int:
        return len(self._pending)

    def counters(self) -> dict[str, int]:
        return {
            "pending": len(self._pending),
            "waiting_outcomes": len(self._early),
            "added": self.added,
            "matched": self.matched,
            "unmatched_outcomes": self.unmatched,
            "late_outcomes": self.late,
            "outcomes_after_eviction": self.after_eviction,
            "expired": self.expired,
            "evicted_overflow": self.evicted,
            "replaced": self.replaced,
            "waiting_evicted": self.waiting_evicted,
            "dropped_ids_forgotten": self.forgotten,
        }
