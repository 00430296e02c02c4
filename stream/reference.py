"""Reference profiles: what "normal" looks like for a model, learnt from its reference file.

The reference (CONTRACT §2) is a JSON Lines file of prediction events with labels. From it
we infer each feature's type where the config does not declare it, its null rate, observed
range and histogram (numeric: quantile bins; categorical: category shares), the same for
predictions, scores and labels, and the model's reference metric overall and per slice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from config.errors import ConfigError
from config.file import Config, FeatureSpec, ModelConfig
from stream.columns import MISSING, extract, numeric
from stream.events import EventDecoder, Prediction
from stream.metrics import Estimate, compute
from stream.monitors.estimate import Calibration

MIN_REFERENCE_ROWS = 50
MAX_CATEGORIES = 1000
MAX_CLASSES = 1000


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column of the reference: quantile bins, range, null rate, bounds."""

    name: str
    n: int
    null_rate: float
    edges: NDArray[np.float64]
    counts: NDArray[np.float64]
    min: float
    max: float
    mean: float
    std: float
    bound_min: float | None = None
    bound_max: float | None = None
    out_of_bounds_rate: float = 0.0

    kind = "numeric"

    def histogram(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """Counts of finite ``values`` over the reference bins."""
        idx = np.searchsorted(self.edges, values, side="right")
        return np.bincount(idx, minlength=len(self.edges) + 1).astype(np.int64)

    def out_of_bounds(self, values: NDArray[np.float64]) -> int:
        n = 0
        if self.bound_min is not None:
            n += int(np.count_nonzero(values < self.bound_min))
        if self.bound_max is not None:
            n += int(np.count_nonzero(values > self.bound_max))
        return n

    def out_of_range(self, values: NDArray[np.float64]) -> int:
        return int(np.count_nonzero((values < self.min) | (values > self.max)))


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical (or boolean) column of the reference: category shares, null rate."""

    name: str
    n: int
    null_rate: float
    categories: tuple[Any, ...]
    counts: NDArray[np.float64]
    value_types: tuple[type, ...]
    index: Mapping[Any, int] = field(repr=False)
    boolean: bool = False

    kind = "categorical"


Profile = NumericProfile | CategoricalProfile


def numeric_profile(
    name: str, values: list[Any], bins: int, spec: FeatureSpec | None = None
) -> NumericProfile:
    col = numeric(values)
    n = len(values)
    arr = col.values[~np.isnan(col.values)]
    if len(arr) == 0:
        raise ConfigError(f"reference: {name!r} has no numeric values")
    qs = np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(qs)
    counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
    prof = NumericProfile(
        name=name,
        n=n,
        null_rate=(n - len(arr)) / n,
        edges=edges,
        counts=counts.astype(np.float64),
        min=float(arr.min()),
        max=float(arr.max()),
        mean=float(arr.mean()),
        std=float(arr.std()),
        bound_min=spec.min if spec else None,
        bound_max=spec.max if spec else None,
    )
    oob = prof.out_of_bounds(arr)
    if oob:
        prof = NumericProfile(**{**prof.__dict__, "out_of_bounds_rate": oob / len(arr)})
    return prof


def categorical_profile(name: str, values: list[Any], boolean: bool = False) -> CategoricalProfile:
    present = [v for v in values if v is not None and v is not MISSING]
    counter = Counter(present)
    if len(counter) > MAX_CATEGORIES:
        raise ConfigError(
            f"reference: {name!r} has {len(counter)} distinct values (more than "
            f"{MAX_CATEGORIES}); declare it numeric or leave it out"
        )
    cats = tuple(sorted(counter, key=lambda v: (-counter[v], str(v))))
    types = tuple(sorted({type(v) for v in present}, key=lambda t: t.__name__)) or (str,)
    return CategoricalProfile(
        name=name,
        n=len(values),
        null_rate=(len(values) - len(present)) / max(len(values), 1),
        categories=cats,
        counts=np.array([counter[c] for c in cats], dtype=np.float64),
        value_types=types,
        index={c: i for i, c in enumerate(cats)},
        boolean=boolean,
    )


def _infer_type(name: str, values: list[Any]) -> str:
    types = {type(v) for v in values if v is not None and v is not MISSING}
    if not types:
        raise ConfigError(f"reference: feature {name!r} is always null; declare its type")
    if types == {float}:
        return "numeric"
    if types == {bool}:
        return "boolean"
    if types == {str}:
        return "categorical"
    names = ", ".join(sorted(t.__name__ for t in types))
    raise ConfigError(f"reference: feature {name!r} mixes types ({names}); declare its type")


def feature_profile(name: str, values: list[Any], spec: FeatureSpec | None, bins: int) -> Profile:
    ftype = spec.type if spec is not None else _infer_type(name, values)
    if ftype == "numeric":
        return numeric_profile(name, values, bins, spec)
    return categorical_profile(name, values, boolean=ftype == "boolean")


class ClassIndex:
    """Maps class labels to float codes, learning new classes up to a bound.

    >>> ci = ClassIndex([0.0, 1.0])
    >>> ci.code(1.0), ci.code("spam"), ci.code(True)
    (1.0, 2.0, 1.0)
    """

    def __init__(self, classes: Iterable[Any], limit: int = MAX_CLASSES) -> None:
        self._codes: dict[Any, float] = {}
        self.limit = limit
        for c in classes:
            self.code(c)

    def code(self, label: Any) -> float:
        c = self._codes.get(label)
        if c is None:
            if len(self._codes) >= self.limit:
                return -1.0
            c = float(len(self._codes))
            self._codes[label] = c
        return c

    def codes(self, labels: Sequence[Any]) -> NDArray[np.float64]:
        get = self._codes.get
        out = [get(v) for v in labels]
        if None in out:
            out = [self.code(v) for v in labels]
        return np.array(out, dtype=np.float64)

    @property
    def classes(self) -> list[Any]:
        return list(self._codes)


@dataclass(frozen=True)
class SliceDim:
    """A dimension to slice by: a feature (numeric ones in reference quartiles) or a tag."""

    name: str
    source: str  # "feature" | "tag"
    edges: NDArray[np.float64] | None = None

    def label(self, value: Any) -> str | None:
        if value is None or value is MISSING:
            return None
        if self.edges is not None:
            if type(value) is not float:
                return None
            i = int(np.searchsorted(self.edges, value, side="right"))
            return f"{self.name}=q{i + 1}"
        return f"{self.name}={value}"

    def labels(self, values: Sequence[Any]) -> list[str | None]:
        """:meth:`label` of each value (one search for all of them when they are all floats).

        >>> dim = SliceDim("age", "feature", np.array([30.0, 50.0]))
        >>> dim.labels([20.0, 50.0, 99.5]), dim.labels([20.0, None, 7])
        (['age=q1', 'age=q3', 'age=q3'], ['age=q1', None, None])
        """
        if self.edges is None or set(map(type, values)) != {float}:
            return [self.label(v) for v in values]
        bins = np.searchsorted(self.edges, np.array(values, dtype=np.float64), side="right")
        names = [f"{self.name}=q{i + 1}" for i in range(len(self.edges) + 1)]
        return list(map(names.__getitem__, bins.tolist()))


@dataclass(frozen=True)
class ScoredReference:
    """A binary classifier's labelled reference scores, for estimating its performance
    before labels come (:mod:`stream.monitors.estimate`): the isotonic calibration of score
    to P(positive), and each labelled row's calibrated probability, whether the model
    predicted the positive class, and its score, in reference order."""

    calibration: Calibration
    prob: NDArray[np.float64]
    predicted_positive: NDArray[np.bool_]
    scores: NDArray[np.float64]


@dataclass(frozen=True)
class ModelProfile:
    """Everything the monitors need to know about a model's normal behaviour."""

    model_id: str
    config: ModelConfig
    features: dict[str, Profile]
    prediction: Profile
    score: NumericProfile | None
    label: Profile | None
    classes: ClassIndex | None
    positive: float
    slices: tuple[SliceDim, ...]
    metric: Estimate | None
    slice_metrics: dict[str, Estimate]
    scored: ScoredReference | None = None

    @property
    def is_classification(self) -> bool:
        return self.config.task != "regression"


def _positive(cfg: ModelConfig, classes: ClassIndex) -> float:
    if cfg.positive_label is not None:
        return classes.code(cfg.positive_label)
    labels = classes.classes
    if set(labels) <= {0.0, 1.0}:
        return classes.code(1.0)
    return classes.code(sorted(labels, key=str)[-1])


def build_profile(model_id: str, cfg: ModelConfig, rows: list[Prediction], bins: int,
                  min_reference_rows: int = 100) -> ModelProfile:
    """Build a model's profile from its reference predictions (pure; see :func:`load_profiles`)."""
    if len(rows) < MIN_REFERENCE_ROWS:
        raise ConfigError(
            f"models.{model_id}.reference: {len(rows)} predictions; at least "
            f"{MIN_REFERENCE_ROWS} are needed"
        )
    feats = [r.features for r in rows]
    names = list(dict.fromkeys(k for f in feats for k in f))
    for declared in cfg.features:
        if declared not in names:
            raise ConfigError(f"models.{model_id}.features.{declared}: not in the reference")
    profiles = {
        name: feature_profile(name, extract(feats, name), cfg.features.get(name), bins)
        for name in names
    }
    classification = cfg.task != "regression"
    preds = [r.prediction for r in rows]
    labels = [r.label for r in rows]
    if classification:
        pred_prof: Profile = categorical_profile("prediction", preds)
        classes = ClassIndex(
            sorted({*preds, *(v for v in labels if v is not None)}, key=lambda v: (str(type(v)), v))
        )
    else:
        pred_prof = numeric_profile("prediction", [_as_float(v) for v in preds], bins)
        classes = None
    scores = [r.score for r in rows]
    score_prof = (
        numeric_profile("score", scores, bins) if any(s is not None for s in scores) else None
    )
    labelled = [r for r in rows if r.label is not None]
    label_prof: Profile | None = None
    if labelled:
        lab = [r.label for r in labelled]
        label_prof = (
            categorical_profile("label", lab)
            if classification
            else numeric_profile("label", [_as_float(v) for v in lab], bins)
        )
    dims = []
    for dim in cfg.slices:
        prof = profiles.get(dim)
        if prof is None:
            dims.append(SliceDim(dim, "tag"))
        elif isinstance(prof, NumericProfile):
            vals = numeric(extract(feats, dim)).values
            q = np.unique(np.nanquantile(vals, [0.25, 0.5, 0.75]))
            dims.append(SliceDim(dim, "feature", q))
        else:
            dims.append(SliceDim(dim, "feature"))
    positive = _positive(cfg, classes) if classes is not None else 1.0
    metric, slice_metrics = _reference_metrics(
        cfg, labelled, classes, positive, tuple(dims), min_reference_rows
    )
    return ModelProfile(
        model_id=model_id,
        config=cfg,
        features=profiles,
        prediction=pred_prof,
        score=score_prof,
        label=label_prof,
        classes=classes,
        positive=positive,
        slices=tuple(dims),
        metric=metric,
        slice_metrics=slice_metrics,
        scored=_scored(labelled, classes, positive) if cfg.task == "binary_classification"
        else None,
    )


def _scored(labelled: list[Prediction], classes: ClassIndex | None,
            positive: float) -> ScoredReference | None:
    """The reference scores of a binary classifier, if it has enough labelled rows with a
    score and both classes among their labels."""
    rows = [r for r in labelled if r.score is not None]
    if classes is None or len(rows) < MIN_SCORED_ROWS:
        return None
    y = classes.codes([r.label for r in rows]) == positive
    if y.all() or not y.any():
        return None
    scores = np.array([r.score for r in rows], dtype=np.float64)
    calibration = Calibration.fit(scores, y)
    return ScoredReference(calibration, calibration(scores),
                           classes.codes([r.prediction for r in rows]) == positive, scores)


MIN_SCORED_ROWS = 500  # a calibration needs a few hundred labelled scores


def _as_float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


def _reference_metrics(
    cfg: ModelConfig,
    labelled: list[Prediction],
    classes: ClassIndex | None,
    positive: float,
    dims: tuple[SliceDim, ...],
    min_rows: int,
) -> tuple[Estimate | None, dict[str, Estimate]]:
    if not labelled:
        return None, {}
    if classes is not None:
        y = classes.codes([r.label for r in labelled])
        p = classes.codes([r.prediction for r in labelled])
    else:
        y = np.array([_as_float(r.label) for r in labelled], dtype=np.float64)
        p = np.array([_as_float(r.prediction) for r in labelled], dtype=np.float64)
    s = np.array([np.nan if r.score is None else r.score for r in labelled], dtype=np.float64)
    metric = cfg.performance.metric
    overall = compute(metric, y, p, s, positive=positive)
    per_slice: dict[str, Estimate] = {}
    for dim in dims:
        source = [r.features if dim.source == "feature" else (r.tags or {}) for r in labelled]
        keys = [dim.label(v) for v in extract(source, dim.name)]
        for key in set(keys) - {None}:
            mask = np.array([k == key for k in keys])
            if mask.sum() >= min_rows:
                est = compute(metric, y[mask], p[mask], s[mask], positive=positive)
                if est is not None:
                    per_slice[str(key)] = est
    return overall, per_slice


def read_reference(path: Path, model_id: str, max_event_bytes: int) -> list[Prediction]:
    """Read a reference file; any line that is not a valid prediction is a config error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"models.{model_id}.reference: cannot read {path}: "
                          f"{exc.strerror or exc}") from None
    decoder = EventDecoder({model_id}, max_event_bytes=max_event_bytes)
    rows: list[Prediction] = []
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        events, rejects = decoder.decode(line)
        if rejects:
            raise ConfigError(
                f"models.{model_id}.reference: {path.name} line {lineno}: "
                f"{rejects[0].reason}: {rejects[0].detail}"
            )
        for ev in events:
            if not isinstance(ev, Prediction):
                raise ConfigError(
                    f"models.{model_id}.reference: {path.name} line {lineno}: "
                    "only prediction events belong in a reference"
                )
            rows.append(ev)
    return rows


def load_profiles(config: Config) -> dict[str, ModelProfile]:
    """Read every model's reference and build its profile."""
    out: dict[str, ModelProfile] = {}
    for model_id, cfg in config.models.items():
        mon = config.monitoring_for(model_id)
        rows = read_reference(config.reference_path(model_id), model_id,
                              config.limits.max_event_bytes)
        out[model_id] = build_profile(
            model_id, cfg, rows, mon.drift.bins, mon.performance.min_reference_rows
        )
    return out
