"""Monitoring health: is the model's performance watched at all? A blind monitor is an
incident, not silence.

Performance can only be measured on labels, and labels fail quietly: they arrive later than
the join's TTL, carry ``request_id`` values that match no prediction, stop coming, or the
predictions carry no ``request_id`` (and no inline label) to be joined by; and a reference
without labels gives nothing to compare with. Each of those is a ``monitoring_health``
signal that says performance is unmonitored and why:

========================  ==============================================================
subject / statistic       fires when
========================  ==============================================================
``labels`` /              in a window of ``window_events`` outcomes, at least
``late_label_rate``       ``max_lost_label_share`` came more than ``join_ttl_seconds``
                          after their prediction
``labels`` /              ... were for predictions the size bound (``join_max_pending``)
``evicted_label_rate``    had pushed out
``labels`` /              ... matched no prediction (their ``request_id`` is unknown)
``unknown_request_rate``
``request_id`` /          in a window of predictions, at least ``max_unlabellable_share``
``unlabellable_rate``     carry neither a label nor a ``request_id``
``label_arrival`` /       the predictions are more than the TTL ahead of the last outcome
``outcome_lag_days``      (labels later than the TTL, stopped, or never came), with
                          predictions waiting
``reference`` /           the reference has no labels (every window, while it lasts)
``reference_labels``
========================  ==============================================================

Windows are counts (of outcomes and of predictions), so like every monitor these are
evaluations: clear, held (inside the hysteresis band) or fired. A model whose config says
it gets no labels (``performance.expect_labels: false``) is not checked.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from config.file import MonitoringSettings
from stream.monitors.join import LabelJoin
from stream.monitors.window import WindowClock
from stream.reference import ModelProfile
from stream.signals import (
    Evaluation,
    EvidenceValue,
    Findings,
    Kind,
    Sample,
    Scope,
    SeriesKey,
    Signal,
    Window,
)
from stream.state import State, check

HEALTH = Kind.MONITORING_HEALTH
DAY = 86_400.0
FATES = {"late": "late_label_rate", "evicted": "evicted_label_rate",
         "unknown": "unknown_request_rate"}
REASONS = {
    "late_label_rate": "labels arrive later than join_ttl_seconds ({ttl:g} days): their "
                       "predictions were dropped unlabelled; raise join_ttl_seconds above "
                       "the labels' delay",
    "evicted_label_rate": "labels arrive after join_max_pending ({pending}) newer predictions "
                          "pushed theirs out; raise join_max_pending",
    "unknown_request_rate": "outcomes carry request_id values that match no prediction "
                            "(ids that differ between the two, or predictions never sent)",
    "unlabellable_rate": "predictions carry neither a label nor a request_id: no label can "
                         "ever be joined to them",
    "outcome_lag_days": "the outcomes are more than join_ttl_seconds ({ttl:g} days) behind "
                        "the predictions: labels come later than that, stopped coming, or "
                        "never came",
    "reference_labels": "the reference has no labels: there is nothing to measure "
                        "performance against",
}


class LabelHealth:
    """Evaluates whether one model's labels are joined and its performance measured.

    Parameters
    ----------
    profile
        The model's reference profile (``profile.metric`` is None without labels).
    settings
        Window sizes, thresholds, hysteresis.
    join
        The model's label join, whose outcome fates and clocks it reads.
    """

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings,
                 join: LabelJoin) -> None:
        self.profile = profile
        self.settings = settings
        self.join = join
        self.model_id = profile.model_id
        size = settings.window_events
        self._clock = WindowClock(size, None, size)
        self._predictions = 0
        self._unlabellable = 0
        self._pred_clock = float("-inf")
        self._fates: Counter[str] = Counter()
        self._outcomes = 0
        self._first: tuple[int, float] | None = None  # the open outcome window's start

    def state(self) -> State:
        return {"kind": "health", "v": 1, "clock": self._clock.state(),
                "predictions": self._predictions, "unlabellable": self._unlabellable,
                "pred_clock": self._pred_clock, "fates": dict(self._fates),
                "outcomes": self._outcomes,
                "first": list(self._first) if self._first is not None else None}

    def restore(self, state: State) -> None:
        state = check(state, "health", 1)
        self._clock.restore(state["clock"])
        self._predictions, self._unlabellable = int(state["predictions"]), int(
            state["unlabellable"])
        self._pred_clock = float(state["pred_clock"])
        self._fates = Counter({str(k): int(v) for k, v in state["fates"].items()})
        self._outcomes = int(state["outcomes"])
        first = state["first"]
        self._first = None if first is None else (int(first[0]), float(first[1]))

    def predictions(self, seq: NDArray[np.int64], ts: NDArray[np.float64],
                    labellable: NDArray[np.bool_],
                    outcome_clock: Callable[[int], float]) -> Findings:
        """A model's predictions, in order, which of them could ever get a label, and the
        outcomes' clock at any event index of the batch (so that a window's lag is what
        it was at its last prediction, however the stream was cut into batches)."""
        out = Findings()
        for a, b, window in self._clock.split(seq, ts):
            if b > a:
                self._predictions += b - a
                self._unlabellable += int(np.count_nonzero(~labellable[a:b]))
                self._pred_clock = max(self._pred_clock, float(ts[a:b].max()))
            if window is not None:
                self._close_predictions(window, out, outcome_clock(window.end_seq))
        return out

    def _close_predictions(self, window: Window, out: Findings, outcome_clock: float) -> None:
        h = self.settings.health
        n, bad = self._predictions, self._unlabellable
        self._predictions = self._unlabellable = 0
        if self.profile.metric is None:
            self._judge(out, window, "reference", "reference_labels", 0.0, 1.0, fire=True,
                        held=False, evidence={"reference_rows": self.profile.prediction.n})
            return
        rate = bad / n if n else 0.0
        self._judge(out, window, "request_id", "unlabellable_rate", rate,
                    h.max_unlabellable_share,
                    fire=rate >= h.max_unlabellable_share,
                    held=rate >= self._keep * h.max_unlabellable_share,
                    evidence={"predictions": n, "unlabellable": bad})
        ttl = self.join.ttl_seconds / DAY
        first = self.join.first_ts
        lag = (0.0 if first is None
               else max(self._pred_clock - max(outcome_clock, first), 0.0) / DAY)
        self._judge(out, window, "label_arrival", "outcome_lag_days", round(lag, 3), ttl,
                    fire=lag > ttl, held=lag > self._keep * ttl,
                    evidence={"join_ttl_days": round(ttl, 3),
                              "waiting_predictions": len(self.join)})

    @property
    def _keep(self) -> float:
        return 1.0 - self.settings.hysteresis

    def outcomes(self) -> Findings:
        """Take the fates of the outcomes the join decided since the last call."""
        out = Findings()
        if self.profile.metric is None:
            self.join.take_fates()
            return out
        size = self.settings.window_events
        for seq, t, fate, _ in self.join.take_fates():
            if self._first is None:
                self._first = (seq, t)
            self._fates[fate] += 1
            self._outcomes += 1
            if self._outcomes >= size:
                self._close_outcomes(Window(self._first[0], seq, self._first[1], t,
                                            self._outcomes), out)
        return out

    def _close_outcomes(self, window: Window, out: Findings) -> None:
        h = self.settings.health
        n, fates = self._outcomes, self._fates
        self._outcomes, self._fates, self._first = 0, Counter(), None
        counts: dict[str, EvidenceValue] = {f: fates[f] for f in ("matched", *FATES)}
        held: set[SeriesKey] = set()
        fired: list[Signal] = []
        samples: list[Sample] = []
        for fate, statistic in FATES.items():
            rate = fates[fate] / n
            samples.append(Sample(HEALTH, "labels", statistic, None, None, round(rate, 6),
                                  h.max_lost_label_share))
            if rate >= h.max_lost_label_share:
                evidence: dict[str, EvidenceValue] = {"outcomes": n, **counts}
                if fate == "late" and self.join.lateness:
                    evidence["median_lateness_days"] = round(
                        statistics.median(self.join.lateness) / DAY, 2)
                fired.append(self._signal("labels", statistic, rate, h.max_lost_label_share,
                                          window, evidence))
            elif rate >= self._keep * h.max_lost_label_share:
                held.add((HEALTH, "labels", statistic))
        out.signals.extend(fired)
        out.evaluations.append(Evaluation(
            self.model_id, Scope(frozenset({HEALTH}), "labels"), window.end_seq, window.end_ts,
            frozenset(held), frozenset((HEALTH, s.subject, s.statistic) for s in fired),
            tuple(samples)))

    def _judge(self, out: Findings, window: Window, subject: str, statistic: str,
               value: float, threshold: float, *, fire: bool, held: bool,
               evidence: dict[str, EvidenceValue]) -> None:
        """One series of one prediction window: a signal and its evaluation."""
        key = (HEALTH, subject, statistic)
        if fire:
            out.signals.append(self._signal(subject, statistic, value, threshold, window,
                                            evidence))
        out.evaluations.append(Evaluation(
            self.model_id, Scope(frozenset({HEALTH}), subject), window.end_seq, window.end_ts,
            frozenset({key}) if held and not fire else frozenset(),
            frozenset({key}) if fire else frozenset(),
            (Sample(*key, None, None, round(value, 6), threshold),)))

    def _signal(self, subject: str, statistic: str, value: float, threshold: float,
                window: Window, evidence: dict[str, EvidenceValue]) -> Signal:
        perf = self.settings.performance
        reason = REASONS[statistic].format(ttl=perf.join_ttl_seconds / DAY,
                                           pending=perf.join_max_pending)
        return Signal(model_id=self.model_id, kind=HEALTH, subject=subject,
                      statistic=statistic, value=round(value, 6), threshold=threshold,
                      window=window, evidence={**evidence, "reason": reason,
                                               "performance_unmonitored": True},
                      ts=window.end_ts, seq=window.end_seq)
