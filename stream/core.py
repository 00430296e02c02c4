"""The monitoring core: messages in, signals out. Pure: no I/O, no clock but event time.

The Kafka worker, the file replay and the tests all drive this one class, so what a replay
shows is what production does. Messages are processed in batches (decoding and monitor
updates are vectorised per batch); every event gets an index (``seq``) in arrival order,
and results do not depend on how the stream was cut into batches.

>>> from watchkeeper.config import load_config_text
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.columns import extract
from stream.events import DedupeSet, EventDecoder, Metric, Outcome, Prediction, Reject
from stream.monitors.business import BusinessMonitor
from stream.monitors.inputs import InputMonitor, LabelMonitor
from stream.monitors.join import LabelJoin
from stream.monitors.performance import Labelled, PerformanceMonitor
from stream.reference import ClassIndex, ModelProfile, SliceDim
from stream.signals import Signal
from watchkeeper.config import Config


@dataclass(slots=True)
class BatchResult:
    """What one batch of messages produced."""

    signals: list[Signal] = field(default_factory=list)
    rejects: list[tuple[int, Reject]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0


# A prediction waiting for its label: (version, prediction, score, slice keys).
_Pending = tuple[str | None, Any, float | None, tuple[str | None, ...]]


class ModelRuntime:
    """All monitors of one model, and the translation of events into their inputs."""

    def __init__(self, profile: ModelProfile, config: Config) -> None:
        settings = config.monitoring_for(profile.model_id)
        self.profile = profile
        self.inputs = InputMonitor(profile, settings)
        self.performance = PerformanceMonitor(profile, settings) if profile.metric else None
        self.labels = LabelMonitor(profile, settings) if profile.label is not None else None
        self.business = BusinessMonitor(profile.model_id, dict(profile.config.business_metrics),
                                        settings)
        self.join = LabelJoin(settings.performance.join_ttl_seconds,
                              settings.performance.join_max_pending)
        self.classes = (ClassIndex(profile.classes.classes) if profile.classes is not None
                        else None)
        self._slice_cache: list[dict[Any, str | None]] = [{} for _ in profile.slices]

    def slice_keys(self, preds: Sequence[Prediction]) -> list[tuple[str | None, ...]]:
        dims = self.profile.slices
        if not dims:
            return [()] * len(preds)
        cols: list[list[str | None]] = []
        for dim, cache in zip(dims, self._slice_cache, strict=True):
            rows = [p.features for p in preds] if dim.source == "feature" else [
                p.tags or {} for p in preds]
            cols.append(_labels(dim, cache, extract(rows, dim.name)))
        return list(zip(*cols, strict=True))

    def encode(self, values: Sequence[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        if self.classes is not None:
            return self.classes.codes(values)
        return np.array([float(v) if type(v) is float else np.nan for v in values])


def _labels(dim: SliceDim, cache: dict[Any, str | None], values: list[Any]) -> list[str | None]:
    if dim.edges is not None:
        return [dim.label(v) for v in values]
    out = list(map(cache.get, values))
    if None in out:
        for v in set(values) - cache.keys():
            cache[v] = dim.label(v)
        out = list(map(cache.get, values))
    return out


class Core:
    """Decode, validate, dedupe and monitor; returns signals and rejects per batch."""

    def __init__(self, config: Config, profiles: dict[str, ModelProfile]) -> None:
        self.config = config
        limits = config.limits
        self.decoder = EventDecoder(config.models, max_event_bytes=limits.max_event_bytes,
                                    max_message_bytes=limits.max_message_bytes)
        self.dedupe = DedupeSet(limits.dedupe_capacity)
        self.models = {m: ModelRuntime(p, config) for m, p in profiles.items()}
        self.seq = 0  # index of the next event
        self.watermark = float("-inf")  # highest event time seen
        self.watermarks: dict[str, float] = {}  # ... per model
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.duplicates = 0

    def process(self, messages: Sequence[bytes]) -> BatchResult:
        """Process a batch of messages (each one event or a JSON array of events)."""
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
        preds: dict[str, tuple[list[Prediction], list[int]]] = {}
        outcomes: list[tuple[int, Outcome, float]] = []  # with the watermark at its arrival
        metrics: dict[str, tuple[list[Metric], list[int]]] = {}
        watermark = self.watermark
        for s, ev in zip(seqs, events, strict=True):
            ts: float = ev.ts  # type: ignore[assignment]  # the decoder made it epoch seconds
            if ts > watermark:
                watermark = ts
            kind = type(ev)
            if kind is Prediction:
                group = preds.get(ev.model_id)
                if group is None:
                    group = preds[ev.model_id] = ([], [])
                group[0].append(ev)  # type: ignore[arg-type]
                group[1].append(s)
            elif kind is Outcome:
                outcomes.append((s, ev, watermark))  # type: ignore[arg-type]
            else:
                mgroup = metrics.get(ev.model_id)
                if mgroup is None:
                    mgroup = metrics[ev.model_id] = ([], [])
                mgroup[0].append(ev)  # type: ignore[arg-type]
                mgroup[1].append(s)
        self.watermark = watermark
        # the decoder made every ts epoch seconds (float)
        tops: list[tuple[str, Any]] = [(m, max(p.ts for p in g[0])) for m, g in preds.items()]
        tops += [(m, max(x.ts for x in g[0])) for m, g in metrics.items()]
        tops += [(o.model_id, o.ts) for _, o, _ in outcomes]
        marks = self.watermarks
        for model_id, top in tops:
            if top > marks.get(model_id, float("-inf")):
                marks[model_id] = top
        n_pred = sum(len(g[0]) for g in preds.values())
        n_metric = sum(len(g[0]) for g in metrics.values())
        self.accepted.update(prediction=n_pred, outcome=len(outcomes), metric=n_metric)
        labelled = self._predictions(preds, result)
        self._outcomes(outcomes, labelled)
        for model_id, items in labelled.items():
            result.signals.extend(self._labelled(self.models[model_id], items))
        for model_id, (mets, mseqs) in metrics.items():
            result.signals.extend(self.models[model_id].business.update(
                [m.name for m in mets], np.array([m.value for m in mets]),
                np.array(mseqs, dtype=np.int64), np.array([m.ts for m in mets])))
        for rt in self.models.values():
            rt.join.expire(self.watermark)
        result.signals.sort(key=lambda sig: sig.seq)
        return result

    def _predictions(
        self, preds: dict[str, tuple[list[Prediction], list[int]]], result: BatchResult
    ) -> dict[str, list[tuple[int, float, Any, _Pending]]]:
        labelled: dict[str, list[tuple[int, float, Any, _Pending]]] = {}
        for model_id, (rows, seqs) in preds.items():
            rt = self.models[model_id]
            seq_arr = np.array(seqs, dtype=np.int64)
            ts_arr = np.array([p.ts for p in rows], dtype=np.float64)
            result.signals.extend(rt.inputs.update(rows, seq_arr, ts_arr))
            if rt.performance is None and rt.labels is None:
                continue
            keys = rt.slice_keys(rows)
            items = labelled.setdefault(model_id, [])
            j_keys: list[str] = []
            j_rows: list[tuple[_Pending]] = []
            j_ts: list[float] = []
            j_seq: list[int] = []
            for p, s, k in zip(rows, seqs, keys, strict=True):
                if p.label is not None:
                    items.append((s, p.ts, p.label,  # type: ignore[arg-type]
                                  (p.model_version, p.prediction, p.score, k)))
                elif p.request_id is not None:
                    j_keys.append(p.request_id)
                    j_rows.append(((p.model_version, p.prediction, p.score, k),))
                    j_ts.append(p.ts)  # type: ignore[arg-type]
                    j_seq.append(s)
            rt.join.add_many(j_keys, j_rows, j_ts, j_seq)
        return labelled

    def _outcomes(self, outcomes: list[tuple[int, Outcome, float]],
                  labelled: dict[str, list[tuple[int, float, Any, _Pending]]]) -> None:
        for s, o, now in outcomes:
            hit = self.models[o.model_id].join.match(o.request_id, now, s)
            if hit is not None:
                labelled.setdefault(o.model_id, []).append(
                    (s, o.ts, o.label, hit[0]))  # type: ignore[arg-type]

    def _labelled(self, rt: ModelRuntime,
                  items: list[tuple[int, float, Any, _Pending]]) -> list[Signal]:
        if not items:
            return []
        items.sort(key=lambda it: it[0])
        seq = np.array([it[0] for it in items], dtype=np.int64)
        ts = np.array([it[1] for it in items], dtype=np.float64)
        raw_labels = [it[2] for it in items]
        out: list[Signal] = []
        if rt.performance is not None:
            pend = [it[3] for it in items]
            y = rt.encode(raw_labels)
            p = rt.encode([x[1] for x in pend])
            s = np.array([np.nan if x[2] is None else x[2] for x in pend])
            ok = ~(np.isnan(y) | np.isnan(p))
            if not ok.all():
                keep = np.flatnonzero(ok).tolist()
                seq, ts, y, p, s = seq[ok], ts[ok], y[ok], p[ok], s[ok]
                pend = [pend[i] for i in keep]
            out.extend(rt.performance.update(Labelled(
                seq=seq, ts=ts, y=y, pred=p, score=s, version=[x[0] for x in pend],
                slices=[x[3] for x in pend])))
        if rt.labels is not None:
            lseq = np.array([it[0] for it in items], dtype=np.int64)
            lts = np.array([it[1] for it in items], dtype=np.float64)
            out.extend(rt.labels.update(raw_labels, lseq, lts))
        return out

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
        }


def _sum_counters(items: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for item in items:
        total.update(item)
    return dict(total)
