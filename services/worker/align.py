"""Aligning a partition's input topics: release messages in the order they were produced,
whichever topic the consumer happened to fetch first.

A worker that catches up a backlog (after a restart, under lag, or deployed onto topics
that already hold events) is handed whole fetches of one topic before the other: tens of
thousands of predictions before any of their outcomes. Processed in that order, the labels
would join long after their predictions and monitors would see another stream than the one
that happened. Like Kafka Streams' timestamp synchronisation, the :class:`Aligner` holds a
partition's messages and releases them merged by their record time (the producer's
timestamp; ties: topic order, then offset) only as far as every input topic that still has
unread records has been read: a topic's later records cannot be earlier than its last one.
Topics that are caught up (nothing unread) do not hold the others back, so live traffic
flows at once. Two bounds keep it live and bounded: a topic that is behind but sends
nothing for ``max_hold`` seconds no longer holds the others, and at most ``max_held``
messages are held (the oldest go first); the engine pauses a topic that holds more than
``pause_at`` so that the consumer fetches the others.

>>> from services.worker.processor import Incoming
>>> a = Aligner(("p", "o"))
>>> msgs = [Incoming("p", 0, i, None, b"", timestamp=t) for i, t in enumerate([1, 2, 5, 9])]
>>> [m.timestamp for m in a.release(msgs, behind={"o"})]  # no outcome read yet: wait
[]
>>> out = a.release([Incoming("o", 0, 0, None, b"", timestamp=3)], behind={"o"})
>>> [(m.topic, m.timestamp) for m in out]  # up to the outcomes' last time: 3
[('p', 1), ('p', 2), ('o', 3)]
>>> [(m.topic, m.timestamp) for m in a.release([], behind=set())]  # caught up: the rest
[('p', 5), ('p', 9)]
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.worker.processor import Incoming


class Aligner:
    """Holds one partition's messages per input topic and releases them in record-time
    order, as far as the topics that are behind allow.

    Parameters
    ----------
    topics
        The input topics, in the order that breaks ties of record time.
    max_hold
        Seconds a topic that is behind may hold the others back without sending anything.
    max_held
        Messages held at most; past it the oldest are released regardless.
    pause_at
        A topic holding more than this many messages should be paused by the engine.
    """

    def __init__(self, topics: Sequence[str], *, max_hold: float = 30.0,
                 max_held: int = 200_000, pause_at: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rank = {t: i for i, t in enumerate(topics)}
        self.max_hold = max_hold
        self.max_held = max_held
        self.pause_at = pause_at
        self._clock = clock
        self._held: dict[str, deque[Incoming]] = {t: deque() for t in topics}
        self._last_ts: dict[str, int] = {}  # the latest record time received per topic
        self._last_offset: dict[str, int] = {}
        self._heard: dict[str, float] = {}  # when each topic last sent a message
        self._started = clock()

    @property
    def held(self) -> int:
        return sum(map(len, self._held.values()))

    def crowded(self) -> set[str]:
        """Topics holding more than ``pause_at`` messages (to pause)."""
        return {t for t, q in self._held.items() if len(q) > self.pause_at}

    def release(self, messages: Sequence[Incoming], behind: Collection[str]) -> list[Incoming]:
        """Take a fetch's messages (each topic's in offset order) and return those that may
        be processed now, in record-time order. ``behind``: the input topics that still
        have unread records for this partition."""
        now = self._clock()
        for m in messages:
            if m.offset <= self._last_offset.get(m.topic, -1):
                continue  # fetched again (a seek, a rebalance): held or released already
            if m.topic not in self._held:
                self._held[m.topic] = deque()
                self.rank.setdefault(m.topic, len(self.rank))
            self._held[m.topic].append(m)
            self._last_offset[m.topic] = m.offset
            self._last_ts[m.topic] = max(m.timestamp, self._last_ts.get(m.topic, m.timestamp))
            self._heard[m.topic] = now
        # every later record of a topic that is behind comes at or after its last one; a
        # topic that is behind but has sent nothing for max_hold seconds holds nobody back
        cutoff = float("inf")
        for t in behind:
            if t in self._held and now - self._heard.get(t, self._started) < self.max_hold:
                cutoff = min(cutoff, self._last_ts.get(t, float("-inf")))
        out: list[Incoming] = []
        for queue in self._held.values():
            while queue and queue[0].timestamp <= cutoff:
                out.append(queue.popleft())
        for _ in range(self.held - self.max_held):  # bounded: the oldest go regardless
            oldest = min((q for q in self._held.values() if q), key=lambda q: self._key(q[0]))
            out.append(oldest.popleft())
        out.sort(key=self._key)
        return out

    def _key(self, m: Incoming) -> tuple[int, int, int]:
        return (m.timestamp, self.rank.get(m.topic, len(self.rank)), m.offset)
