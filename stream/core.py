"""The monitoring core: messages in, signals out. Pure: no I/O, no clock but event time.

The Kafka worker, the file replay and the tests all drive this one class, so what a replay
shows is what production does. Messages are processed in batches (decoding and monitor
updates are vectorised per batch); every event gets an index (``seq``) in arrival order,
and results do not depend on how the stream was cut into batches (but for an outcome that
comes before its prediction at the join's bounds: see :mod:`stream.monitors.join`).

>>> from config.file import load_config_text
>>> from stream.reference import build_profile
>>> from stream.events import Prediction
>>> cfg = load_config_text("models: {m: {task: regression, reference: r.jsonl}}")
>>> ref = [Prediction(ts=float(i), model_id="m", features={"x": float(i % 10)},
...                   prediction=1.0, label=1.0) for i in range(200)]
>>> core = Core(cfg, {"m": build_profile("m", cfg.models["m"], ref, bins=10)})
>>> ok = b'{"type":"metric","ts":1,"model_id":"m","name":"x","value":1}'
>>> out = core.process([ok, b'not json', ok.replace(b'"m"', b'"zz"')])
>>> out.accepted, [(seq, str(r.reason)) for seq, r in out.rejects]
(1, [(1, 'invalid_json'), (2, 'unknown_model')])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import is_not
from typing import Any, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from config.file import Config, MonitoringSettings
from stream.columns import MISSING
from stream.events import (
    DedupeSet,
    Event,
    EventDecoder,
    Metric,
    Outcome,
    Prediction,
    Reason,
    Reject,
)
from stream.monitors.business import BusinessMonitor
from stream.monitors.estimated_performance import ESTIMABLE, EstimatedPerformanceMonitor
from stream.monitors.health import LabelHealth
from stream.monitors.inputs import InputMonitor, LabelMonitor
from stream.monitors.join import LabelJoin
from stream.monitors.performance import Labelled, PerformanceMonitor
from stream.reference import ClassIndex, ModelProfile, SliceDim
from stream.signals import Evaluation, Findings, Signal
from stream.state import State, StateError, check

T = TypeVar("T")
MAX_FAILING = 32  # failing messages a batch is searched for, one by one (Core._halves)
Rows = NDArray[np.intp]  # indices into a batch's events


@dataclass(slots=True)
class BatchResult:
    """What one batch of messages produced: signals, and every evaluation the monitors
    made (fired or not), each in event order."""

    signals: list[Signal] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    rejects: list[tuple[int, Reject]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0


# A prediction waiting for its label: (version, prediction, score, slice keys, its seq).
_Pending = tuple[str | None, Any, float | None, tuple[str | None, ...], int]

_KINDS: dict[type, int] = {Prediction: 0, Outcome: 1, Metric: 2}
_NO_TAGS: dict[str, Any] = {}


@dataclass(slots=True)
class _Labels:
    """Labelled predictions of one model: each at the index (``seq``) its pair matched."""

    seq: NDArray[np.int64]
    ts: NDArray[np.float64]
    labels: list[Any]
    pending: list[_Pending]


MONITORS = ("inputs", "labels", "performance", "business", "join", "health", "estimated")


class ModelRuntime:
    """All monitors of one model, and the translation of events into their inputs."""

    def __init__(self, profile: ModelProfile, settings: MonitoringSettings) -> None:
        self.settings = settings
        self.profile = profile
        self.inputs = InputMonitor(profile, settings)
        self.performance = PerformanceMonitor(profile, settings) if profile.metric else None
        self.labels = LabelMonitor(profile, settings) if profile.label is not None else None
        self.business = BusinessMonitor(profile.model_id, dict(profile.config.business_metrics),
                                        settings)
        self.join = self._join()
        self.health = self._health()
        self.estimated = (EstimatedPerformanceMonitor(profile, settings)
                          if profile.scored is not None
                          and profile.config.performance.metric in ESTIMABLE else None)
        self.classes = (ClassIndex(profile.classes.classes) if profile.classes is not None
                        else None)
        self._slice_cache: list[dict[Any, str | None]] = [{} for _ in profile.slices]

    def _join(self) -> LabelJoin:
        perf = self.settings.performance
        return LabelJoin(perf.join_ttl_seconds, perf.join_max_pending, perf.join_wait_seconds,
                         perf.join_remember_dropped,
                         keep_fates=self.profile.config.performance.expect_labels)

    def _health(self) -> LabelHealth | None:
        return (LabelHealth(self.profile, self.settings, self.join)
                if self.profile.config.performance.expect_labels else None)

    def state(self) -> State:
        """Every monitor's state, as plain data (None for a monitor the model has not)."""
        out: State = {}
        for name in MONITORS:
            monitor = getattr(self, name)
            out[name] = monitor.state() if monitor is not None else None
        return out

    def restore(self, state: State) -> list[str]:
        """Resume each monitor from its part of ``state``; one whose part is missing or
        does not fit the current configuration starts afresh. Returns what did."""
        fresh: ModelRuntime | None = None  # built only if a monitor must start afresh
        afresh: list[str] = []
        for name in MONITORS:
            monitor, part = getattr(self, name), state.get(name)
            if monitor is None:
                continue
            if part is None:
                afresh.append(f"{name} (not in the checkpoint)")
                continue
            try:
                if name == "join":
                    monitor.restore(part, row=_pending_row, outcome=tuple)
                else:
                    monitor.restore(part)
            except (StateError, KeyError, TypeError, ValueError, IndexError) as exc:
                fresh = fresh or ModelRuntime(self.profile, self.settings)
                setattr(self, name, getattr(fresh, name))
                afresh.append(f"{name} ({exc})")
        if any(a.startswith("join") for a in afresh) and self.health is not None:
            self.health = self._health()  # it reads the join it was built with
        return afresh

    def slice_keys(self, preds: Sequence[Prediction]) -> list[tuple[str | None, ...]]:
        dims = self.profile.slices
        if not dims:
            return [()] * len(preds)
        cols: list[list[str | None]] = []
        for dim, cache in zip(dims, self._slice_cache, strict=True):
            name = dim.name
            if dim.source == "feature":
                values = [p.features.get(name, MISSING) for p in preds]
            else:
                values = [(p.tags or _NO_TAGS).get(name, MISSING) for p in preds]
            cols.append(_labels(dim, cache, values, self.settings.performance.max_slice_values))
        return list(zip(*cols, strict=True))

    def encode(self, values: Sequence[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        if self.classes is not None:
            return self.classes.codes(values)
        if set(map(type, values)) <= {float}:
            return np.array(values, dtype=np.float64)
        return np.array([float(v) if type(v) is float else np.nan for v in values])


def _pending_row(row: Any) -> tuple[Any, ...]:
    """A waiting prediction, back from a checkpoint: ``(_Pending,)`` (see :data:`_Pending`)."""
    version, prediction, score, slices, seq = row[0]
    return ((version, prediction, score, tuple(slices), int(seq)),)


def _labels(dim: SliceDim, cache: dict[Any, str | None], values: list[Any],
            max_values: int) -> list[str | None]:
    """The slice labels of ``values``; ``cache`` keeps those of at most ``max_values`` raw
    values (and null, missing): the performance monitor tracks no more slice values than
    that, and a dimension of a million values would otherwise be a million entries."""
    if dim.edges is not None:
        return dim.labels(values)
    out = list(map(cache.get, values))
    if None in out:
        room = max_values + 2 - len(cache)
        for v in set(values) - cache.keys():
            if room <= 0:
                label = dim.label
                return [cache[v] if v in cache else label(v) for v in values]
            cache[v] = dim.label(v)
            room -= 1
        out = list(map(cache.get, values))
    return out


def _take(values: Sequence[T], rows: Rows) -> list[T]:
    """The items of ``values`` at ``rows``."""
    return [values[i] for i in rows.tolist()]


def _present(values: Sequence[Any]) -> NDArray[np.bool_]:
    """True where a value is not None."""
    return np.fromiter(map(is_not, values, repeat(None)), dtype=np.bool_, count=len(values))


def _split(events: Sequence[Event]) -> tuple[dict[str, Rows], dict[str, Rows], dict[str, Rows]]:
    """The rows of each model's predictions, outcomes and metrics; in each, the models come
    in the order of their first such event."""
    n = len(events)
    kind = np.fromiter(map(_KINDS.__getitem__, map(type, events)), dtype=np.int64, count=n)
    model_ids = [ev.model_id for ev in events]
    models = list(dict.fromkeys(model_ids))
    if len(models) > 1:
        codes = {m: i for i, m in enumerate(models)}
        kind += 3 * np.fromiter(map(codes.__getitem__, model_ids), dtype=np.int64, count=n)
    groups: tuple[dict[str, Rows], dict[str, Rows], dict[str, Rows]] = ({}, {}, {})
    for k, group in enumerate(groups):
        found = [(m, np.flatnonzero(kind == 3 * i + k)) for i, m in enumerate(models)]
        found = [(m, rows) for m, rows in found if len(rows)]
        found.sort(key=lambda item: int(item[1][0]))
        group.update(found)
    return groups


class Core:
    """Decode, validate, dedupe and monitor; returns signals and rejects per batch."""

    def __init__(self, config: Config, profiles: dict[str, ModelProfile]) -> None:
        self.config = config
        limits = config.limits
        self.decoder = EventDecoder(config.models, max_event_bytes=limits.max_event_bytes,
                                    max_message_bytes=limits.max_message_bytes)
        self.profiles = profiles
        self.dedupe = DedupeSet(limits.dedupe_capacity)
        self.models = self._runtimes()
        self.seq = 0  # index of the next event
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.duplicates = 0
        self._safe: bytes | None = None  # the state as of the last mark() ...
        self._since: list[Sequence[bytes]] = []  # ... and the batches since
        self._since_bytes = 0

    def process(self, messages: Sequence[bytes]) -> BatchResult:
        """Process a batch of messages (each one event or a JSON array of events).

        A message that makes a monitor fail (a bug its values reach) is rejected with
        ``monitor_error`` and the rest of the batch is taken as if it had never come: the
        core goes back to the state before the batch and processes it again in halves,
        down to the message that fails (the monitors do not depend on the batch cut).
        To go back, it keeps its state as of its last :meth:`mark` (the checkpoint's, in a
        worker) and the messages since, taking a mark of its own when they pass
        ``limits.recovery_bytes``. Why our own: a copy of the state with every batch would cost
        more than the monitoring, and the checkpoint's copy is made anyway."""
        if self._safe is None or self._since_bytes > self.config.limits.recovery_bytes:
            self.mark()
        try:
            result = self._process(messages)
        except Exception as exc:  # whatever a monitor raised: the message's fault
            result = self._recover(messages, exc)
            self.mark()
        else:
            self._since.append(messages)
            self._since_bytes += sum(map(len, messages))
        return result

    def mark(self) -> bytes:
        """:meth:`state`, encoded (msgpack), and kept as the point a failing batch goes back
        to; a checkpoint embeds these bytes as they are (:func:`stream.state.encode`)."""
        self._safe = msgspec.msgpack.encode(self.state())
        self._since, self._since_bytes = [], 0
        return self._safe

    def _runtimes(self) -> dict[str, ModelRuntime]:
        return {m: ModelRuntime(p, self.config.monitoring_for(m))
                for m, p in self.profiles.items()}

    def _back(self, blob: bytes, again: Sequence[Sequence[bytes]] = ()) -> None:
        """The state of ``blob`` (in fresh monitors: nothing of the failed batch left in
        them), then ``again`` processed (they succeeded before)."""
        self.dedupe = DedupeSet(self.config.limits.dedupe_capacity)
        self.models = self._runtimes()
        self.restore(msgspec.msgpack.decode(blob))
        for batch in again:
            self._process(batch)

    def _recover(self, messages: Sequence[bytes], exc: Exception) -> BatchResult:
        safe, since = self._safe, self._since
        assert safe is not None
        self._back(safe, since)
        result = BatchResult()
        self._halves(list(enumerate(messages)), result, [0])
        result.signals.sort(key=lambda sig: sig.seq)
        result.evaluations.sort(key=lambda e: e.seq)
        return result

    def _halves(self, part: list[tuple[int, bytes]], result: BatchResult,
                failures: list[int]) -> None:
        """Process ``part`` (messages with their index in the batch) into ``result``; if it
        fails, go back and process its halves; a single message that fails is rejected.
        Past ``MAX_FAILING`` failing messages in a batch (a bug that most messages reach),
        a failing part is rejected whole: the search costs a copy of the state a step."""
        before = msgspec.msgpack.encode(self.state())
        try:
            got = self._process([m for _, m in part])
        except Exception as exc:
            self._back(before)
            if len(part) > 1 and failures[0] < MAX_FAILING:
                half = len(part) // 2
                self._halves(part[:half], result, failures)
                self._halves(part[half:], result, failures)
                return
            failures[0] += 1
            detail = f"a monitor failed on it: {type(exc).__name__}: {exc}"[:500]
            if len(part) > 1:
                detail = (f"a monitor failed on its part of {len(part)} messages of a batch "
                          f"with more than {MAX_FAILING} failing: {type(exc).__name__}: "
                          f"{exc}")[:500]
            for index, raw in part:
                result.rejects.append((self.seq, Reject(Reason.MONITOR_ERROR, detail, raw,
                                                        message=index)))
                self.seq += 1
                self.rejected[str(Reason.MONITOR_ERROR)] += 1
            return
        for seq, reject in got.rejects:
            where = part[reject.message if reject.message is not None else 0][0]
            result.rejects.append((seq, replace(reject, message=where)))
        result.signals += got.signals
        result.evaluations += got.evaluations
        result.accepted += got.accepted
        result.duplicates += got.duplicates

    def _process(self, messages: Sequence[bytes]) -> BatchResult:
        events, seqs, rejects = self.decoder.decode_many(messages, self.seq)
        self.seq += len(events) + len(rejects)
        result = BatchResult(rejects=rejects)
        for _, reject in rejects:
            self.rejected[str(reject.reason)] += 1
        dup = self.dedupe.filter([ev.event_id for ev in events])
        if True in dup:
            keep = [i for i, d in enumerate(dup) if not d]
            result.duplicates = len(events) - len(keep)
            self.duplicates += result.duplicates
            events = [events[i] for i in keep]
            seqs = [seqs[i] for i in keep]
        result.accepted = len(events)
        seq = np.array(seqs, dtype=np.int64)
        # the decoder made every ts epoch seconds (float)
        ts = np.array([ev.ts for ev in events], dtype=np.float64)
        preds, outcomes, metrics = _split(events)
        self.accepted.update(prediction=sum(map(len, preds.values())),
                             outcome=sum(map(len, outcomes.values())),
                             metric=sum(map(len, metrics.values())))
        found = Findings()
        labelled = self._predictions(events, preds, outcomes, seq, ts, found)
        self._outcomes(events, outcomes, seq, ts, labelled)
        for model_id, parts in labelled.items():
            found.extend(self._labelled(self.models[model_id], parts))
        for model_id in dict.fromkeys([*preds, *outcomes]):  # the batch's labels are in
            rt = self.models[model_id]
            if rt.health is not None:
                found.extend(rt.health.outcomes())
            if rt.estimated is not None:
                found.extend(rt.estimated.flush())
        for model_id, rows in metrics.items():
            mets: list[Metric] = _take(events, rows)  # type: ignore[arg-type]
            found.extend(self.models[model_id].business.update(
                [m.name for m in mets], np.array([m.value for m in mets]), seq[rows],
                ts[rows]))
        result.signals = sorted(found.signals, key=lambda sig: sig.seq)
        result.evaluations = sorted(found.evaluations, key=lambda e: e.seq)
        return result

    def _predictions(
        self, events: list[Event], preds: dict[str, Rows], outcomes: dict[str, Rows],
        seq: NDArray[np.int64], ts: NDArray[np.float64], found: Findings
    ) -> dict[str, list[_Labels]]:
        """Feed each model's predictions to its input monitor; those with a label inline are
        returned, those with a ``request_id`` wait in the join for their outcome."""
        labelled: dict[str, list[_Labels]] = {}
        for model_id, at in preds.items():
            rt = self.models[model_id]
            rows: list[Prediction] = _take(events, at)  # type: ignore[arg-type]
            pseq, pts = seq[at], ts[at]
            found.extend(rt.inputs.update(rows, pseq, pts))
            labels = [p.label for p in rows]
            requests = [p.request_id for p in rows]
            has_label = _present(labels)
            clock = _outcome_clock(rt.join.out_clock, outcomes.get(model_id), seq, ts)
            if rt.performance is None and rt.labels is None:
                if rt.health is not None:
                    found.extend(rt.health.predictions(pseq, pts, has_label, clock))
                continue
            if rt.estimated is not None:
                scores = np.array([p.score for p in rows], dtype=np.float64)  # None: NaN
                predicted = rt.encode([p.prediction for p in rows]) == rt.profile.positive
                rt.estimated.predictions(pseq, pts, scores, predicted)
            parts = labelled.setdefault(model_id, [])
            pending: list[_Pending] = [
                (p.model_version, p.prediction, p.score, k, s)
                for p, k, s in zip(rows, rt.slice_keys(rows), pseq.tolist(), strict=True)]
            inline = np.flatnonzero(has_label)
            parts.append(_Labels(pseq[inline], pts[inline], _take(labels, inline),
                                 _take(pending, inline)))
            has_request = _present(requests)
            waiting = np.flatnonzero(~has_label & has_request)
            answered = rt.join.add_many(_take(requests, waiting),
                                        list(zip(_take(pending, waiting))),
                                        pts[waiting].tolist(), pseq[waiting].tolist())
            if rt.health is not None:
                found.extend(rt.health.predictions(pseq, pts, has_label | has_request, clock))
            if answered:  # outcomes that came first and waited for these predictions
                parts.append(_Labels(
                    np.array([s for _, _, s in answered], dtype=np.int64),
                    np.array([o[1] for _, o, _ in answered], dtype=np.float64),
                    [o[0] for _, o, _ in answered],
                    [pending[int(waiting[i])] for i, _, _ in answered]))
        return labelled

    def _outcomes(self, events: list[Event], outcomes: dict[str, Rows], seq: NDArray[np.int64],
                  ts: NDArray[np.float64], labelled: dict[str, list[_Labels]]) -> None:
        """Match each model's outcomes (in order, each at its own event time); one whose
        prediction has not come yet waits for it (as ``(label, ts)``)."""
        for model_id, at in outcomes.items():
            rows: list[Outcome] = _take(events, at)  # type: ignore[arg-type]
            ots = ts[at]
            hits = self.models[model_id].join.match_many(
                [o.request_id for o in rows], ots.tolist(), seq[at].tolist(),
                list(zip([o.label for o in rows], ots.tolist(), strict=True)))
            found = [(i, hit) for i, hit in enumerate(hits) if hit is not None]
            if found:
                labelled.setdefault(model_id, []).append(_Labels(
                    np.array([s for _, (_, s) in found], dtype=np.int64),
                    ots[[i for i, _ in found]], [rows[i].label for i, _ in found],
                    [row[0] for _, (row, _) in found]))

    def _labelled(self, rt: ModelRuntime, parts: list[_Labels]) -> Findings:
        out = Findings()
        seq = np.concatenate([part.seq for part in parts])
        if not len(seq):
            return out
        ts = np.concatenate([part.ts for part in parts])
        raw_labels = [label for part in parts for label in part.labels]
        pending = [pend for part in parts for pend in part.pending]
        if len(seq) > 1 and bool((np.diff(seq) < 0).any()):  # in the order they matched
            order = np.argsort(seq, kind="stable")
            seq, ts = seq[order], ts[order]
            raw_labels, pending = _take(raw_labels, order), _take(pending, order)
        if rt.performance is not None:
            versions, predictions, scores, slices, at = (list(col) for col in zip(*pending,
                                                                                  strict=True))
            y = rt.encode(raw_labels)
            p = rt.encode(predictions)
            s = np.array(scores, dtype=np.float64)  # None: NaN
            ok = ~(np.isnan(y) | np.isnan(p))
            pseq, pts, where = seq, ts, np.array(at, dtype=np.int64)
            if not ok.all():
                keep = np.flatnonzero(ok)
                pseq, pts, y, p, s, where = pseq[ok], pts[ok], y[ok], p[ok], s[ok], where[ok]
                versions, slices = _take(versions, keep), _take(slices, keep)
            out.extend(rt.performance.update(Labelled(
                seq=pseq, ts=pts, y=y, pred=p, score=s, version=versions, slices=slices,
                pred_seq=where)))
            if rt.estimated is not None:
                positive = rt.profile.positive
                rt.estimated.labels(where, pseq, pts, y == positive, p == positive, s)
        if rt.labels is not None:
            out.extend(rt.labels.update(raw_labels, seq, ts))
        return out

    def state(self) -> State:
        """The whole monitoring state, as plain data: counters, the dedupe memory, every
        model's monitors. No configuration and no reference: they are applied again on
        :meth:`restore`."""
        return {"kind": "core", "v": 1, "seq": self.seq, "accepted": dict(self.accepted),
                "rejected": dict(self.rejected), "duplicates": self.duplicates,
                "dedupe": self.dedupe.state(),
                "models": {m: rt.state() for m, rt in self.models.items()}}

    def restore(self, state: State) -> list[str]:
        """Resume from :meth:`state` under the current configuration: unchanged monitors
        carry on with the new thresholds; a model new to the configuration, or a monitor
        whose state no longer fits, starts afresh; a model no longer configured is left
        behind. Returns what was rebuilt and why (StateError if it is no core state)."""
        state = check(state, "core", 1)
        self._safe, self._since, self._since_bytes = None, [], 0  # no way back past it
        self.seq = int(state["seq"])
        self.accepted = Counter({str(k): int(v) for k, v in state["accepted"].items()})
        self.rejected = Counter({str(k): int(v) for k, v in state["rejected"].items()})
        self.duplicates = int(state["duplicates"])
        self.dedupe.restore(state["dedupe"])
        notes: list[str] = []
        models = state["models"]
        for model_id, rt in self.models.items():
            if model_id not in models:
                notes.append(f"{model_id}: new to the configuration, starts afresh")
                continue
            notes.extend(f"{model_id}: {part} starts afresh"
                         for part in rt.restore(models[model_id]))
        notes.extend(f"{m}: no longer configured, its state left behind"
                     for m in sorted(set(models) - set(self.models)))
        return notes

    @property
    def processed(self) -> int:
        """Events this core has taken in: accepted, duplicates and rejected."""
        return (sum(self.accepted.values()) + self.duplicates
                + sum(self.rejected.values()))

    def counters(self) -> dict[str, Any]:
        """Running totals for reports and metrics endpoints."""
        return {
            "events": self.seq,
            "accepted": dict(self.accepted),
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "join": _sum_counters([rt.join.counters() for rt in self.models.values()]),
            "join_by_model": {m: rt.join.counters() for m, rt in self.models.items()},
            "performance": {m: rt.performance.counters() for m, rt in self.models.items()
                            if rt.performance is not None},
            "dedupe": {"remembered": len(self.dedupe), "capacity": self.dedupe.capacity,
                       "forgotten": self.dedupe.forgotten},
            "inputs": {m: rt.inputs.counters() for m, rt in self.models.items()},
            "business": {m: rt.business.counters() for m, rt in self.models.items()},
        }


def _outcome_clock(start: float, rows: Rows | None, seq: NDArray[np.int64],
                   ts: NDArray[np.float64]) -> Callable[[int], float]:
    """The latest outcome time of a model as of each event index of a batch (its outcomes
    are matched after its predictions, so the join's own clock is not yet there)."""
    if rows is None or not len(rows):
        return lambda _: start
    oseq, ots = seq[rows], np.maximum.accumulate(ts[rows])

    def at(s: int) -> float:
        k = int(np.searchsorted(oseq, s, side="right"))
        return max(start, float(ots[k - 1])) if k else start

    return at


def _sum_counters(items: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for item in items:
        total.update(item)
    return dict(total)
