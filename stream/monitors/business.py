"""Business metrics: each named metric's rolling mean against its own reference window.

The first ``reference_observations`` of a metric (per model) are its reference (river's
``stats.Mean``/``stats.Var``); after that a rolling window of ``window_observations``
(river's ``utils.Rolling``) is compared with it every ``eval_every`` observations: an
evaluation. A signal needs a relative fall of at least ``max_drop`` that is also
significant (Welch z); a fall of at least ``1 - hysteresis`` of that, or one that is not
significant, is held; less is clear.

At most ``max_metrics`` names are tracked per model: the configured ones, then others in
event order; observations of the rest are counted (``untracked_observations``) and
otherwise left alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import stats, utils

from config.file import BusinessMetricSpec, MonitoringSettings
from stream.signals import Evaluation, EvidenceValue, Findings, Kind, Sample, Scope, Signal, Window
from stream.state import State, StateError, check
from stream.stats import welch_drop_z, z_critical


@dataclass(slots=True)
class _MetricState:
    spec: BusinessMetricSpec
    ref_mean: stats.Mean = field(default_factory=stats.Mean)
    ref_var: stats.Var = field(default_factory=stats.Var)
    cur_mean: Any = None  # river utils.Rolling(stats.Mean), once the reference is complete
    cur_var: Any = None
    count: int = 0
    window_seq: deque[int] = field(default_factory=deque)
    window_ts: deque[float] = field(default_factory=deque)


# river's statistics as plain data: their few fields, read and set back (river keeps them
# in attributes of its own; the tests would catch a change in them)
def _var(v: stats.Var) -> State:
    return {"n": v.mean.n, "mean": v.mean._mean, "S": v._S}


def _set_var(v: stats.Var, state: State) -> None:
    v.mean.n, v.mean._mean, v._S = float(state["n"]), float(state["mean"]), float(state["S"])


def _rolling(r: Any, var: bool) -> State:
    inner = _var(r.obj) if var else {"n": r.obj.n, "mean": r.obj._mean}
    return {"inner": inner, "window": [args[0] for args, _ in r.window]}


def _set_rolling(r: Any, state: State, var: bool) -> None:
    if len(state["window"]) > r.window.maxlen:
        raise StateError("a rolling window longer than window_observations")
    if var:
        _set_var(r.obj, state["inner"])
    else:
        r.obj.n, r.obj._mean = float(state["inner"]["n"]), float(state["inner"]["mean"])
    r.window.clear()
    r.window.extend(((float(x),), {}) for x in state["window"])


class BusinessMonitor:
    """Rolling means of one model's business metrics; emits business_metric signals."""

    def __init__(self, model_id: str, specs: dict[str, BusinessMetricSpec],
                 settings: MonitoringSettings) -> None:
        self.model_id = model_id
        self.specs = specs
        self.settings = settings
        self._metrics: dict[str, _MetricState] = {}
        self._z = z_critical(settings.alpha, max(len(specs), 1))
        # unconfigured names that may still get a state (configured ones always do)
        self._room = max(settings.business.max_metrics - len(specs), 0)
        self.untracked = 0  # observations of names past the bound

    def state(self) -> State:
        """Every metric's reference and rolling window, as plain data."""
        return {"kind": "business", "v": 1, "metrics": {
            name: {"count": st.count,
                   "ref_mean": {"n": st.ref_mean.n, "mean": st.ref_mean._mean},
                   "ref_var": _var(st.ref_var),
                   "cur_mean": None if st.cur_mean is None else _rolling(st.cur_mean, False),
                   "cur_var": None if st.cur_var is None else _rolling(st.cur_var, True),
                   "window_seq": list(st.window_seq), "window_ts": list(st.window_ts)}
            for name, st in self._metrics.items()}, "untracked": self.untracked}

    def restore(self, state: State) -> None:
        state = check(state, "business", 1)
        b = self.settings.business
        self.untracked = int(state.get("untracked", 0))
        for name, m in state["metrics"].items():
            st = self._state(name)
            if st is None:  # a smaller bound now: what was over it is left behind
                continue
            st.count = int(m["count"])
            st.ref_mean.n, st.ref_mean._mean = float(m["ref_mean"]["n"]), float(
                m["ref_mean"]["mean"])
            _set_var(st.ref_var, m["ref_var"])
            if m["cur_mean"] is not None:
                st.cur_mean = utils.Rolling(stats.Mean, window_size=b.window_observations)
                st.cur_var = utils.Rolling(stats.Var, window_size=b.window_observations)
                _set_rolling(st.cur_mean, m["cur_mean"], False)
                _set_rolling(st.cur_var, m["cur_var"], True)
            st.window_seq = deque(int(x) for x in m["window_seq"])
            st.window_ts = deque(float(x) for x in m["window_ts"])

    def _state(self, name: str) -> _MetricState | None:
        """The metric's state; None for a name past the bound."""
        st = self._metrics.get(name)
        if st is None:
            spec = self.specs.get(name)
            if spec is None:
                if self._room <= 0:
                    return None
                self._room -= 1
                spec = BusinessMetricSpec()
            st = self._metrics[name] = _MetricState(spec)
        return st

    def counters(self) -> dict[str, int]:
        return {"metrics": len(self._metrics), "untracked_observations": self.untracked}

    def update(self, names: list[str], values: NDArray[np.float64], seq: NDArray[np.int64],
               ts: NDArray[np.float64]) -> Findings:
        b = self.settings.business
        out = Findings()
        for i, name in enumerate(names):
            st = self._state(name)
            if st is None:
                self.untracked += 1
                continue
            x = float(values[i])
            st.count += 1
            if st.count <= b.reference_observations:
                st.ref_mean.update(x)
                st.ref_var.update(x)
                continue
            if st.cur_mean is None or st.cur_var is None:
                st.cur_mean = utils.Rolling(stats.Mean, window_size=b.window_observations)
                st.cur_var = utils.Rolling(stats.Var, window_size=b.window_observations)
            st.cur_mean.update(x)
            st.cur_var.update(x)
            st.window_seq.append(int(seq[i]))
            st.window_ts.append(float(ts[i]))
            if len(st.window_seq) > b.window_observations:
                st.window_seq.popleft()
                st.window_ts.popleft()
            seen = st.count - b.reference_observations
            if seen >= b.window_observations and seen % b.eval_every == 0:
                sig, held, sample = self._evaluate(name, st)
                if sig is not None:
                    out.signals.append(sig)
                this = frozenset({(Kind.BUSINESS_METRIC, name, "mean")})
                out.evaluations.append(Evaluation(
                    self.model_id, Scope(frozenset({Kind.BUSINESS_METRIC}), name),
                    int(seq[i]), float(ts[i]), this if held else frozenset(),
                    this if sig is not None else frozenset(), (sample,)))
        return out

    def _evaluate(self, name: str, st: _MetricState) -> tuple[Signal | None, bool, Sample]:
        """The signal of a fall, if any, whether the metric is held (not clear), and the
        window's mean against the line a fall crosses (the sample)."""
        assert st.cur_mean is not None and st.cur_var is not None
        b = self.settings.business
        ref, cur = st.ref_mean.get(), st.cur_mean.get()
        sign = 1.0 if st.spec.direction == "higher_is_better" else -1.0
        drop = sign * (ref - cur)
        rel = drop / abs(ref) if ref else (np.inf if drop > 0 else 0.0)
        sample = Sample(Kind.BUSINESS_METRIC, name, "mean", None, None, round(cur, 6),
                        round(ref * (1 - sign * st.spec.max_drop), 6))
        if rel < st.spec.max_drop:
            return None, rel >= (1.0 - self.settings.hysteresis) * st.spec.max_drop, sample
        z = sign * welch_drop_z(ref, st.ref_var.get(), b.reference_observations,
                                cur, st.cur_var.get(), b.window_observations)
        if z < self._z:
            return None, True, sample
        evidence: dict[str, EvidenceValue] = {
            "reference_mean": round(ref, 6), "current_mean": round(cur, 6),
            "relative_drop": round(float(rel), 4), "max_drop": st.spec.max_drop,
            "z": round(z, 2), "direction": st.spec.direction,
            "reference_observations": b.reference_observations,
            "window_observations": b.window_observations,
        }
        window = Window(st.window_seq[0], st.window_seq[-1], st.window_ts[0], st.window_ts[-1],
                        len(st.window_seq))
        return Signal(model_id=self.model_id, kind=Kind.BUSINESS_METRIC, subject=name,
                      statistic="mean", value=sample.value, threshold=sample.threshold,
                      window=window, evidence=evidence, ts=window.end_ts,
                      seq=window.end_seq), False, sample
