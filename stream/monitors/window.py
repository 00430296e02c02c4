"""Event windows: tumbling, closed by a count or by event time, split at exact indices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream.signals import Window
from stream.state import StateError


@dataclass(slots=True)
class WindowClock:
    """Decides where tumbling windows end: after ``size`` events, or (when ``seconds`` is
    set) once ``seconds`` of event time have passed and at least ``min_size`` events are in.
    Without ``seconds`` (the default configuration) windows are counts of events only, so
    they are the same at any traffic rate.

    >>> wc = WindowClock(size=3, seconds=100.0, min_size=2)
    >>> seq = np.arange(7); ts = np.array([0., 1, 2, 3, 4, 200, 201])
    >>> [(a, b, w.count if w else None) for a, b, w in wc.split(seq, ts)]
    [(0, 3, 3), (3, 5, 2), (5, 7, None)]
    >>> [(a, b, w.count if w else None) for a, b, w in wc.split(seq[:1] + 7, ts[:1] + 400)]
    [(0, 0, 2), (0, 1, None)]
    """

    size: int
    seconds: float | None
    min_size: int
    count: int = 0
    start_seq: int = -1
    start_ts: float = 0.0
    last_seq: int = -1
    last_ts: float = 0.0

    def split(
        self, seq: NDArray[np.int64], ts: NDArray[np.float64]
    ) -> list[tuple[int, int, Window | None]]:
        """Chunks ``[a, b)`` of the batch; a chunk that ends a window carries that window."""
        out: list[tuple[int, int, Window | None]] = []
        n = len(seq)
        i = 0
        if self.seconds is None:
            return self._split_counts(seq, ts)
        while i < n:
            if self.count >= self.min_size and ts[i] - self.start_ts >= self.seconds:
                # the open window is past its time: it closes before this event
                out.append((i, i, self._close()))
            if self.count == 0:
                self.start_seq, self.start_ts = int(seq[i]), float(ts[i])
            end = min(n, i + self.size - self.count)
            closes = self.count + (end - i) >= self.size
            late = np.flatnonzero(ts[i:end] - self.start_ts >= self.seconds)
            for j in late.tolist():
                if j > 0 and self.count + j >= self.min_size:
                    end, closes = i + j, True
                    break
            self.count += end - i
            self.last_seq, self.last_ts = int(seq[end - 1]), float(ts[end - 1])
            out.append((i, end, self._close() if closes else None))
            i = end
        return out

    def _split_counts(
        self, seq: NDArray[np.int64], ts: NDArray[np.float64]
    ) -> list[tuple[int, int, Window | None]]:
        """:meth:`split` for windows of ``size`` events each.

        >>> wc = WindowClock(size=3, seconds=None, min_size=2)
        >>> [(a, b, w.count if w else None) for a, b, w in wc.split(np.arange(7), np.zeros(7))]
        [(0, 3, 3), (3, 6, 3), (6, 7, None)]
        """
        out: list[tuple[int, int, Window | None]] = []
        n = len(seq)
        i = 0
        while i < n:
            if self.count == 0:
                self.start_seq, self.start_ts = int(seq[i]), float(ts[i])
            end = min(n, i + self.size - self.count)
            self.count += end - i
            self.last_seq, self.last_ts = int(seq[end - 1]), float(ts[end - 1])
            out.append((i, end, self._close() if self.count >= self.size else None))
            i = end
        return out

    def state(self) -> dict[str, int | float]:
        """Where the open window stands (plain data for a checkpoint)."""
        return {"count": self.count, "start_seq": self.start_seq, "start_ts": self.start_ts,
                "last_seq": self.last_seq, "last_ts": self.last_ts}

    def restore(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.start_seq, self.start_ts = int(state["start_seq"]), float(state["start_ts"])
        self.last_seq, self.last_ts = int(state["last_seq"]), float(state["last_ts"])
        if self.count > self.size:
            raise StateError(f"a window of {self.count} events, longer than {self.size}")

    def _close(self) -> Window:
        window = Window(self.start_seq, self.last_seq, self.start_ts, self.last_ts, self.count)
        self.count = 0
        return window
