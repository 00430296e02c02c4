"""Benchmark cases for alert quality: prediction streams with known ground-truth incidents.

Every case is one production model's prediction stream, built only from river's concept-drift
generators (``river.datasets.synth``) and river's bundled, offline real datasets (``Bananas``,
``Shuttle``). For each case a model is trained on the *pre-incident* concept only, then frozen;
it scores a labelled reference sample (disjoint from its training data, pre-incident concept,
``label_mode`` "inline") and every production row. Train, reference and production rows are
disjoint draws (other generator seeds, or other rows of the same seeded sequence). Placing the
rows in time (traffic, label delays) and replaying them is left to the caller.

Conventions
-----------
- ``Truth.onset`` is the 0-based index in ``Case.rows`` of the first affected row, ``Truth.end``
  the index of the first row after the incident (``None``: to the end of the stream).
- Abrupt changes are drawn segment by segment, one seeded generator per segment, so the
  boundary is exact. (river 0.26.1's ``ConceptDriftStream`` cannot do an abrupt change far into
  a stream: with ``width=1`` its sigmoid ``math.exp(4 * (position - t) / width)`` overflows for
  ``position`` above ~178, so width must exceed ``4 * position / 709``.)
- Gradual changes use ``ConceptDriftStream``, whose row ``t`` (1-based) comes from the new
  concept with probability ``1 / (1 + exp(-4 (t - position) / width))``. The onset of a gradual
  drift is defined as the row where that probability reaches 0.12, i.e. ``position - width/2``
  (in 0-based rows: ``onset = position - width // 2 - 1``); by then about 3 % of ``width`` rows
  of the new concept have already appeared (the sigmoid never is exactly 0).
- ``label_mode`` per row, seeded: 80 % "outcome", 20 % "none" (``sea_abrupt``: 20 % "inline",
  60 % "outcome", 20 % "none"). ``version`` is "v1" except where a case says otherwise.
- Agrawal's categorical features (``elevel``, ``car``, ``zipcode``) are carried as strings in
  ``Row.features`` (the model sees them as numbers); every other feature is a float. Agrawal is
  drawn with ``perturbation=0``: with ``perturbation > 0`` river 0.26.1 collapses ``hvalue`` to
  ten values (its ``_perturb_value`` gets the bounds in the wrong order).

Cases (sizes for ``quick=False``; ``quick=True`` divides stream sizes and onsets by eight)
-----------------------------------------------------------------------------------------
``sea_abrupt``
    SEA(variant=0, noise=0.05) then, from row 30,000 of 60,000, SEA(variant=2, noise=0.05)
    (threshold 8 -> 7): abrupt real concept drift. Logistic regression; accuracy 0.94 -> 0.87.
    Actionable, performance.
``sea_covariate``
    SEA(variant=0, noise=0.05); from row 30,000 of 60,000 the rows far from the boundary
    x0 + x1 = 8 are kept with probability 0.1 only (rejection): the inputs move towards the
    decision boundary, the concept does not. Logistic regression; accuracy 0.94 -> 0.90.
    Actionable, performance: the case performance estimated from scores is for.
``agrawal_gradual``
    ConceptDriftStream(Agrawal(classification_function=5), Agrawal(classification_function=1),
    position=32,501, width=5,000), 60,000 rows; onset 30,000 (by the end every row follows
    function 1). Hoeffding tree; accuracy 0.89 -> 0.70 over the incident. Actionable,
    performance.
``hyperplane``
    ConceptDriftStream(Hyperplane(seed=a), Hyperplane(seed=b)) of 10 features, width 1,000: the
    separating hyperplane is replaced by another (seeds give the weights). Training and reference
    rows are the first 10,000 rows of Hyperplane(seed=a), which the stream then skips; 60,000
    production rows, onset 30,000. Logistic regression; accuracy 0.94 -> 0.80 (how far depends
    on the two random weight vectors: 8-28 points over the seeds tried). Actionable,
    performance.
``agrawal_multi``
    Agrawal function 3 (rows 0-19,999), 1 (20,000-34,999), 3 again (35,000-54,999), 5
    (55,000-74,999), one seeded generator per segment: two actionable performance incidents, the
    first with ``end`` = 35,000. Hoeffding tree; accuracy 0.89 -> 0.72, back to 0.89, -> 0.62.
``sea_stationary``
    SEA(variant=1, noise=0.05), 100,000 rows, no incident. Logistic regression, accuracy 0.94.
``agrawal_stationary``
    Agrawal function 6, 60,000 rows, no incident. Hoeffding tree, accuracy 0.94.
``agrawal_nulls``
    Agrawal function 8, stationary; from row 25,000 of 60,000, ``salary`` and ``loan`` (both
    used by the model) arrive as None together in 40 % of rows; the model sees them imputed with
    their training means (accuracy 0.95 -> 0.77). Actionable, data_quality.
``agrawal_benign``
    Agrawal function 2 (depends on ``age`` and ``elevel`` only); from row 30,000 of 60,000,
    ``hvalue`` x1.3, ``hyears`` +5, ``loan`` x1.25, ``commission`` x1.2 and half the ``car`` codes
    redrawn from 1-6: covariate shift of features the model does not use, accuracy unchanged.
    Hoeffding tree with majority-class leaves, trained on 10,000 rows also when quick: it splits
    on ``age`` and ``elevel`` only, so every prediction is what it would be without the shift
    (naive-Bayes leaves, the default elsewhere, would let the shifted inputs move scores a
    little). Not actionable, kind "none".
``canary_version``
    SEA(variant=0, noise=0.05), 60,000 rows, stationary; from row 20,000, 10 % of rows (seeded)
    are served by "v2", a logistic regression trained on SEA variant 3 (threshold 9.5): about 10
    points less accurate on its rows (0.84 against v1's 0.94), while overall accuracy falls only
    ~0.7 points. Actionable, performance (per version).
``bananas_stationary``
    river.datasets.Bananas split into train (1,800), reference (2,000) and held-out (1,500);
    40,000 production rows bootstrapped (with replacement) from the held-out part. kNN
    (k=15, SWINN graph_k=10), accuracy ~0.89. No incident. Production accuracy is that of the
    fixed held-out part, which differs from the reference's by chance (about +-1 point).
``shuttle_stationary``
    river.datasets.Shuttle (49,097 rows, class 1 ~7 %) split into train (10,000), reference
    (5,000) and held-out (34,097); 40,000 production rows bootstrapped from the held-out part.
    Hoeffding tree, accuracy 0.996. No incident.
``shuttle_units``
    As ``shuttle_stationary`` (own seeds), but from row 20,000 one input arrives multiplied by
    1000 (a unit change upstream): the input whose x1000 flips the most reference predictions
    of this case's tree (``f1`` for seed 7: accuracy 0.996 -> 0.07, as every row then falls on
    the class-1 side of the tree's split; with some other seeds ``f7`` or ``f9``, with smaller
    drops). Actionable, data_quality.

Not included: a prior (label) shift on real data. The bundled datasets' models are only 5-8
points less accurate on their weaker class (Bananas kNN ~0.93/0.87, Shuttle tree 1.00/0.95),
so even a class share of 0.45 -> 0.9 moves accuracy by 2-3.5 points, and the bootstrap from a
1,500-row held-out part differs from the 2,000-row reference by about a point by chance: not
reliably above ``max_drop``.

Run ``python bench/cases.py [--quick] [--seed N]`` for one line per case: sizes, reference
accuracy, accuracy before and after each incident onset (on the rows, all labels counted).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from river import compose, datasets, linear_model, neighbors, preprocessing, tree
from river.datasets import synth

FeatureValue = float | str | bool | None
Features = dict[str, FeatureValue]
ModelInput = dict[str, float]
# one drawn sample: what the event carries, what the model sees, the true label
Sample = tuple[Features, ModelInput, int]


@dataclass(frozen=True)
class Truth:
    onset: int  # index (0-based) of the first affected prediction in Case.rows
    end: int | None  # index of the first prediction after the incident (None: to the end)
    actionable: bool  # must a person act (a page is right) or not (benign: no page is right)
    kind: str  # what should page: "performance", "data_quality", "schema", or "none"
    note: str  # one line: what happens


@dataclass(frozen=True, slots=True)
class Row:
    features: Features
    prediction: int  # 0/1 for binary cases
    score: float  # model's probability of class 1, in [0, 1]
    label: int  # ground truth
    version: str  # model version that served it
    label_mode: str  # "outcome", "inline" or "none"


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    model_id: str
    model: dict[str, object]  # the model's YAML config entry without "reference"
    reference: list[Row]
    rows: list[Row]
    incidents: tuple[Truth, ...]


# ---------------------------------------------------------------------------------------------
# seeds, sizes, label modes


def _seed(seed: int, name: str, purpose: str) -> int:
    """A seed for one purpose of one case (str seeding of ``random`` is stable across runs)."""
    return random.Random(f"{seed}/{name}/{purpose}").randrange(2**31)


def _rng(seed: int, name: str, purpose: str) -> random.Random:
    return random.Random(_seed(seed, name, purpose))


DEFAULT_MODES = (0.0, 0.8)  # shares of "inline" and "outcome"; the rest is "none"


def _label_modes(rng: random.Random, n: int, modes: tuple[float, float]) -> list[str]:
    inline, outcome = modes
    out: list[str] = []
    for _ in range(n):
        r = rng.random()
        out.append("inline" if r < inline else "outcome" if r < inline + outcome else "none")
    return out


@dataclass(frozen=True)
class _Sizes:
    train: int
    reference: int
    scale: int  # production sizes and onsets are given for quick=False and divided by this

    def n(self, full: int) -> int:
        return full // self.scale


def _sizes(quick: bool, train: int, reference: int, cheap: bool = False) -> _Sizes:
    """Sizes of one case: quick streams are eight times shorter, and where drawing is slow
    (Agrawal, Shuttle's tree) quick training and reference sets are smaller too."""
    if not quick:
        return _Sizes(train=train, reference=reference, scale=1)
    if cheap:
        return _Sizes(train=train, reference=reference, scale=8)
    return _Sizes(train=max(train // 4, 1000), reference=min(reference, 1000), scale=8)


# ---------------------------------------------------------------------------------------------
# models


class Frozen:
    """A trained river classifier, no longer learning: scores are P(class 1)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def score(self, x: ModelInput) -> float:
        proba = self._model.predict_proba_one(x)
        p = proba.get(1, 0.0)  # True == 1: finds a True key as well
        return min(1.0, max(0.0, float(p)))


def _fit(model: Any, data: Iterable[Sample]) -> Frozen:
    for _, x, y in data:
        model.learn_one(x, y)
    return Frozen(model)


def _logistic() -> Any:
    return compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())


def _hoeffding(leaf_prediction: str = "nba") -> Any:
    return tree.HoeffdingTreeClassifier(
        grace_period=50, delta=1e-3, tau=0.05, leaf_prediction=leaf_prediction
    )


def _knn(seed: int) -> Any:
    engine = neighbors.SWINN(graph_k=10, maxlen=5000, seed=seed)
    return neighbors.KNNClassifier(n_neighbors=15, engine=engine)


def _row(model: Frozen, s: Sample, version: str, mode: str) -> Row:
    score = model.score(s[1])
    return Row(s[0], int(score >= 0.5), score, s[2], version, mode)


def _serve(
    model: Frozen,
    samples: Sequence[Sample],
    modes: Sequence[str],
    versions: Sequence[str] | None = None,
    others: dict[str, Frozen] | None = None,
) -> list[Row]:
    if versions is None:
        return [_row(model, s, "v1", m) for s, m in zip(samples, modes, strict=True)]
    served = {"v1": model, **(others or {})}
    return [
        _row(served[v], s, v, m) for s, m, v in zip(samples, modes, versions, strict=True)
    ]


def _reference(model: Frozen, samples: Sequence[Sample]) -> list[Row]:
    return [_row(model, s, "v1", "inline") for s in samples]


def _config(slices: Sequence[str] = (), features: dict[str, object] | None = None,
            max_drop: float = 0.02) -> dict[str, object]:
    cfg: dict[str, object] = {
        "task": "binary_classification",
        "performance": {"metric": "accuracy", "max_drop": max_drop},
    }
    if slices:
        cfg["slices"] = list(slices)
    if features:
        cfg["features"] = features
    return cfg


# ---------------------------------------------------------------------------------------------
# drawing samples from river


def _take(gen: Iterable[tuple[dict[Any, Any], Any]], n: int) -> list[tuple[dict[Any, Any], Any]]:
    return list(itertools.islice(gen, n))


def _plain(raw: Iterable[tuple[dict[Any, Any], Any]]) -> list[Sample]:
    """Samples whose features are all numeric: keys as str, values as float."""
    out: list[Sample] = []
    for x, y in raw:
        xf = {str(k): float(v) for k, v in x.items()}
        out.append((dict(xf), xf, int(y)))
    return out


AGRAWAL_CATEGORICAL = ("elevel", "car", "zipcode")
_CODES = {i: str(i) for i in range(64)}  # shared str objects for the integer codes


def _agrawal(raw: Iterable[tuple[dict[Any, Any], Any]]) -> list[Sample]:
    """Agrawal samples: the categorical codes become str in the event, floats for the model."""
    out: list[Sample] = []
    for x, y in raw:
        xf = {str(k): float(v) for k, v in x.items()}
        feats: Features = dict(xf)
        for k in AGRAWAL_CATEGORICAL:
            feats[k] = _CODES[int(x[k])]
        out.append((feats, xf, int(y)))
    return out


def _agrawal_draw(function: int, seed: int, n: int) -> list[Sample]:
    return _agrawal(_take(synth.Agrawal(classification_function=function, seed=seed), n))


def _agrawal_config() -> dict[str, object]:
    def num() -> dict[str, object]:
        return {"type": "numeric", "min": 0.0}

    features: dict[str, object] = {
        "salary": num(),
        "commission": num(),
        "age": {"type": "numeric", "min": 0.0, "max": 120.0},
        "elevel": {"type": "categorical"},
        "car": {"type": "categorical"},
        "zipcode": {"type": "categorical"},
        "hvalue": num(),
        "hyears": num(),
        "loan": num(),
    }
    return _config(slices=["elevel"], features=features)


def drift_mask(n: int, position: int, width: int, seed: int | None) -> list[bool]:
    """Which of the first ``n`` rows of ``ConceptDriftStream(..., position, width, seed)`` come
    from the drift stream: the same draws as river 0.26.1's ``__iter__``.

    >>> mask = drift_mask(1000, position=500, width=100, seed=1)
    >>> sum(mask[:300]), sum(mask[700:])
    (0, 300)
    """
    rng = random.Random(seed)
    out: list[bool] = []
    for t in range(1, n + 1):
        p = 1.0 / (1.0 + math.exp(-4.0 * float(t - position) / float(width)))
        out.append(not rng.random() > p)
    return out


# ---------------------------------------------------------------------------------------------
# the cases


@dataclass(frozen=True)
class _Sea:
    """A SEA(variant=0, noise=0.05) case's common part: sizes, a logistic regression trained
    on it, its reference rows, and the production rows before the onset."""

    n: int
    onset: int
    model: Frozen
    reference: list[Sample]
    before: list[tuple[dict[Any, Any], Any]]
    seeded: Callable[[str], int]


def _sea(quick: bool, seed: int, name: str) -> _Sea:
    sz = _sizes(quick, 5000, 5000, cheap=True)
    n, onset = sz.n(60_000), sz.n(30_000)
    s = functools.partial(_seed, seed, name)
    train = _plain(_take(synth.SEA(variant=0, noise=0.05, seed=s("train")), sz.train))
    ref = _plain(_take(synth.SEA(variant=0, noise=0.05, seed=s("reference")), sz.reference))
    before = _take(synth.SEA(variant=0, noise=0.05, seed=s("before")), onset)
    return _Sea(n, onset, _fit(_logistic(), train), ref, before, s)


def _sea_abrupt(quick: bool, seed: int) -> Case:
    name = "sea_abrupt"
    sea = _sea(quick, seed, name)
    n, onset, model, ref, before = sea.n, sea.onset, sea.model, sea.reference, sea.before
    after = _take(synth.SEA(variant=2, noise=0.05, seed=sea.seeded("after")), n - onset)
    modes = _label_modes(_rng(seed, name, "modes"), n, (0.2, 0.6))
    return Case(
        name=name,
        source=(
            f"river.datasets.synth.SEA(variant=0, noise=0.05) rows 0-{onset - 1}, then "
            f"SEA(variant=2, noise=0.05) rows {onset}-{n - 1} (segments, exact abrupt switch)"
        ),
        model_id="sea-abrupt",
        model=_config(),
        reference=_reference(model, ref),
        rows=_serve(model, _plain(before + after), modes),
        incidents=(
            Truth(onset, None, True, "performance",
                  "SEA threshold x0+x1 > 8 becomes > 7: abrupt concept drift"),
        ),
    )


def _near_boundary(samples: Iterable[tuple[dict[Any, Any], Any]], n: int, share: float,
                   rng: random.Random) -> list[tuple[dict[Any, Any], Any]]:
    """``n`` SEA rows drawn by rejection: those within 1 of the concept's boundary
    (x0 + x1 = 8) all kept, the others with probability ``1 - share``: the inputs move,
    the concept does not."""
    out: list[tuple[dict[Any, Any], Any]] = []
    for x, y in samples:
        if len(out) >= n:
            break
        near = abs(x[0] + x[1] - 8.0) < 1.0
        if near or rng.random() >= share:
            out.append((x, y))
    return out


def _sea_covariate(quick: bool, seed: int) -> Case:
    name = "sea_covariate"
    sea = _sea(quick, seed, name)
    n, onset, model, ref, before = sea.n, sea.onset, sea.model, sea.reference, sea.before
    after = _near_boundary(synth.SEA(variant=0, noise=0.05, seed=sea.seeded("after")),
                           n - onset, 0.9, _rng(seed, name, "near"))
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=(
            "river.datasets.synth.SEA(variant=0, noise=0.05); from row "
            f"{onset} of {n}, rows away from the boundary x0 + x1 = 8 kept with "
            "probability 0.1 (rejection): a covariate shift towards the uncertain middle, "
            "the concept unchanged"
        ),
        model_id="sea-covariate",
        model=_config(),
        reference=_reference(model, ref),
        rows=_serve(model, _plain(before + after), modes),
        incidents=(
            Truth(onset, None, True, "performance",
                  "the inputs move towards the decision boundary: more uncertain rows, "
                  "lower accuracy, the same concept (what estimates from scores see)"),
        ),
    )


def _agrawal_gradual(quick: bool, seed: int) -> Case:
    name = "agrawal_gradual"
    sz = _sizes(quick, 10_000, 5000)
    n, onset, width = sz.n(60_000), sz.n(30_000), sz.n(5000)
    position = onset + width // 2 + 1  # 1-based row of the sigmoid's midpoint
    s = functools.partial(_seed, seed, name)
    train = _agrawal_draw(5, s("train"), sz.train)
    ref = _agrawal_draw(5, s("reference"), sz.reference)
    stream = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=5, seed=s("before")),
        drift_stream=synth.Agrawal(classification_function=1, seed=s("after")),
        position=position, width=width, seed=s("mix"),
    )
    model = _fit(_hoeffding(), train)
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=(
            f"river.datasets.synth.ConceptDriftStream(Agrawal(classification_function=5), "
            f"Agrawal(classification_function=1), position={position}, width={width})"
        ),
        model_id="agrawal-gradual",
        model=_agrawal_config(),
        reference=_reference(model, ref),
        rows=_serve(model, _agrawal(_take(stream, n)), modes),
        incidents=(
            Truth(onset, None, True, "performance",
                  f"Agrawal function 5 -> 1 over ~{width} rows (onset: 12 % drawn from 1)"),
        ),
    )


def _hyperplane(quick: bool, seed: int) -> Case:
    name = "hyperplane"
    sz = _sizes(quick, 5000, 5000, cheap=True)
    n, onset, width = sz.n(60_000), sz.n(30_000), sz.n(1000)
    skip = sz.train + sz.reference
    position = skip + onset + width // 2 + 1
    s = functools.partial(_seed, seed, name)
    a, b = s("before"), s("after")
    head = _plain(_take(synth.Hyperplane(seed=a, n_features=10), skip))
    train, ref = head[: sz.train], head[sz.train :]
    stream = synth.ConceptDriftStream(
        stream=synth.Hyperplane(seed=a, n_features=10),
        drift_stream=synth.Hyperplane(seed=b, n_features=10),
        position=position, width=width, seed=s("mix"),
    )
    # the stream's first `skip` rows are Hyperplane(seed=a)'s training and reference rows
    rows = _plain(itertools.islice(stream, skip, skip + n))
    model = _fit(_logistic(), train)
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=(
            f"river.datasets.synth.ConceptDriftStream(Hyperplane(seed={a}, n_features=10), "
            f"Hyperplane(seed={b}, n_features=10), position={position}, width={width}), "
            f"rows {skip}-{skip + n - 1} (the first {skip} trained the model / are the reference)"
        ),
        model_id="hyperplane",
        model=_config(),
        reference=_reference(model, ref),
        rows=_serve(model, rows, modes),
        incidents=(
            Truth(onset, None, True, "performance",
                  f"the separating hyperplane is replaced by another over ~{width} rows"),
        ),
    )


def _agrawal_multi(quick: bool, seed: int) -> Case:
    name = "agrawal_multi"
    sz = _sizes(quick, 10_000, 5000)
    cuts = [0, sz.n(20_000), sz.n(35_000), sz.n(55_000), sz.n(75_000)]
    functions = [3, 1, 3, 5]
    s = functools.partial(_seed, seed, name)
    train = _agrawal_draw(3, s("train"), sz.train)
    ref = _agrawal_draw(3, s("reference"), sz.reference)
    rows: list[Sample] = []
    for i, f in enumerate(functions):
        rows += _agrawal_draw(f, s(f"segment{i}"), cuts[i + 1] - cuts[i])
    model = _fit(_hoeffding(), train)
    modes = _label_modes(_rng(seed, name, "modes"), len(rows), DEFAULT_MODES)
    bounds = zip(functions, cuts, cuts[1:], strict=False)
    segs = ", ".join(f"{f} [{lo}, {hi})" for f, lo, hi in bounds)
    return Case(
        name=name,
        source=f"river.datasets.synth.Agrawal(classification_function=...) segments: {segs}",
        model_id="agrawal-multi",
        model=_agrawal_config(),
        reference=_reference(model, ref),
        rows=_serve(model, rows, modes),
        incidents=(
            Truth(cuts[1], cuts[2], True, "performance",
                  "Agrawal function 3 -> 1, back to 3 at end"),
            Truth(cuts[3], None, True, "performance", "Agrawal function 3 -> 5 to the end"),
        ),
    )


def _sea_stationary(quick: bool, seed: int) -> Case:
    name = "sea_stationary"
    sz = _sizes(quick, 5000, 5000, cheap=True)
    n = sz.n(100_000)
    s = functools.partial(_seed, seed, name)
    train = _plain(_take(synth.SEA(variant=1, noise=0.05, seed=s("train")), sz.train))
    ref = _plain(_take(synth.SEA(variant=1, noise=0.05, seed=s("reference")), sz.reference))
    rows = _plain(_take(synth.SEA(variant=1, noise=0.05, seed=s("rows")), n))
    model = _fit(_logistic(), train)
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source="river.datasets.synth.SEA(variant=1, noise=0.05)",
        model_id="sea-stationary",
        model=_config(),
        reference=_reference(model, ref),
        rows=_serve(model, rows, modes),
        incidents=(),
    )


def _agrawal_stationary(quick: bool, seed: int) -> Case:
    name = "agrawal_stationary"
    sz = _sizes(quick, 10_000, 5000)
    n = sz.n(60_000)
    s = functools.partial(_seed, seed, name)
    train = _agrawal_draw(6, s("train"), sz.train)
    ref = _agrawal_draw(6, s("reference"), sz.reference)
    rows = _agrawal_draw(6, s("rows"), n)
    model = _fit(_hoeffding(), train)
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source="river.datasets.synth.Agrawal(classification_function=6)",
        model_id="agrawal-stationary",
        model=_agrawal_config(),
        reference=_reference(model, ref),
        rows=_serve(model, rows, modes),
        incidents=(),
    )


NULLED = ("salary", "loan")


def _agrawal_nulls(quick: bool, seed: int) -> Case:
    name = "agrawal_nulls"
    sz = _sizes(quick, 10_000, 5000)
    n, onset = sz.n(60_000), sz.n(25_000)
    s = functools.partial(_seed, seed, name)
    train = _agrawal_draw(8, s("train"), sz.train)
    ref = _agrawal_draw(8, s("reference"), sz.reference)
    rows = _agrawal_draw(8, s("rows"), n)
    means = {k: statistics.fmean(x[k] for _, x, _ in train) for k in NULLED}
    rng = _rng(seed, name, "nulls")
    for i in range(onset, n):
        if rng.random() < 0.4:
            feats, x, y = rows[i]
            rows[i] = ({**feats, **dict.fromkeys(NULLED)}, {**x, **means}, y)
    model = _fit(_hoeffding(), train)
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=(
            "river.datasets.synth.Agrawal(classification_function=8); from the onset salary "
            "and loan are None in 40 % of rows (model input: training means)"
        ),
        model_id="agrawal-nulls",
        model=_agrawal_config(),
        reference=_reference(model, ref),
        rows=_serve(model, rows, modes),
        incidents=(
            Truth(onset, None, True, "data_quality",
                  "salary and loan (both used by the model) arrive null in 40 % of rows"),
        ),
    )


def _benign_shift(s: Sample, rng: random.Random) -> Sample:
    feats, x, y = s
    x = dict(x)
    x["hvalue"] *= 1.3
    x["hyears"] += 5.0
    x["loan"] *= 1.25
    x["commission"] *= 1.2
    if rng.random() < 0.5:
        x["car"] = float(rng.randint(1, 6))
    shifted: Features = {**feats, **{k: x[k] for k in ("hvalue", "hyears", "loan", "commission")}}
    shifted["car"] = _CODES[int(x["car"])]
    return shifted, x, y


def _agrawal_benign(quick: bool, seed: int) -> Case:
    name = "agrawal_benign"
    sz = _sizes(quick, 10_000, 5000)
    n, onset = sz.n(60_000), sz.n(30_000)
    s = functools.partial(_seed, seed, name)
    # a well-trained tree even when quick: its accuracy noise must stay far below 0.01
    train = _agrawal_draw(2, s("train"), 10_000)
    ref = _agrawal_draw(2, s("reference"), sz.reference)
    rows = _agrawal_draw(2, s("rows"), n)
    rng = _rng(seed, name, "shift")
    rows[onset:] = [_benign_shift(r, rng) for r in rows[onset:]]
    model = _fit(_hoeffding("mc"), train)  # leaves predict by majority: see the docstring
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=(
            "river.datasets.synth.Agrawal(classification_function=2); from the onset hvalue "
            "x1.3, hyears +5, loan x1.25, commission x1.2, half of car redrawn from 1-6"
        ),
        model_id="agrawal-benign",
        model=_agrawal_config(),
        reference=_reference(model, ref),
        rows=_serve(model, rows, modes),
        incidents=(
            Truth(onset, None, False, "none",
                  "covariate shift of hvalue/hyears/loan/commission/car; the model uses age "
                  "and elevel only, accuracy unchanged"),
        ),
    )


def _canary_version(quick: bool, seed: int) -> Case:
    name = "canary_version"
    sz = _sizes(quick, 5000, 5000, cheap=True)
    n, onset = sz.n(60_000), sz.n(20_000)
    s = functools.partial(_seed, seed, name)
    train = _plain(_take(synth.SEA(variant=0, noise=0.05, seed=s("train")), sz.train))
    train2 = _plain(_take(synth.SEA(variant=3, noise=0.05, seed=s("train2")), sz.train))
    ref = _plain(_take(synth.SEA(variant=0, noise=0.05, seed=s("reference")), sz.reference))
    rows = _plain(_take(synth.SEA(variant=0, noise=0.05, seed=s("rows")), n))
    v1, v2 = _fit(_logistic(), train), _fit(_logistic(), train2)
    rng = _rng(seed, name, "versions")
    versions = ["v1"] * onset + ["v2" if rng.random() < 0.1 else "v1" for _ in range(n - onset)]
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=(
            "river.datasets.synth.SEA(variant=0, noise=0.05); v1 trained on it, v2 on "
            "SEA(variant=3, noise=0.05)"
        ),
        model_id="canary-version",
        model=_config(),
        reference=_reference(v1, ref),
        rows=_serve(v1, rows, modes, versions, {"v2": v2}),
        incidents=(
            Truth(onset, None, True, "performance",
                  "canary: 10 % of traffic served by v2, ~12 points less accurate than v1"),
        ),
    )


def _bundled(name: str) -> list[tuple[dict[Any, Any], Any]]:
    """All rows of one of river's bundled (offline) datasets."""
    return list(getattr(datasets, name)())


def _split(rows: list[Sample], rng: random.Random, train: int, ref: int) -> tuple[
    list[Sample], list[Sample], list[Sample]
]:
    rows = list(rows)
    rng.shuffle(rows)
    return rows[:train], rows[train : train + ref], rows[train + ref :]


def _bootstrap(pool: Sequence[Sample], rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(len(pool)) for _ in range(n)]


def _bananas_stationary(quick: bool, seed: int) -> Case:
    name = "bananas_stationary"
    n = _sizes(quick, 0, 0).n(40_000)
    data = _plain(_bundled("Bananas"))
    train, ref, held = _split(data, _rng(seed, name, "split"), 1800, 2000)
    model = _fit(_knn(_seed(seed, name, "knn")), train)
    scores = [model.score(x) for _, x, _ in held]  # the bootstrap repeats rows: score each once
    picks = _bootstrap(held, _rng(seed, name, "bootstrap"), n)
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    rows = [
        Row(held[i][0], int(scores[i] >= 0.5), scores[i], held[i][2], "v1", m)
        for i, m in zip(picks, modes, strict=True)
    ]
    return Case(
        name=name,
        source=(
            "river.datasets.Bananas: train 1800 / reference 2000 / held-out 1500 (seeded "
            "shuffle); rows bootstrapped from the held-out part"
        ),
        model_id="bananas-stationary",
        model=_config(),
        reference=_reference(model, ref),
        rows=rows,
        incidents=(),
    )


def _unit_feature(model: Frozen, ref: Sequence[Sample], factor: float) -> str:
    """The feature whose values times ``factor`` change the most predictions (first 1000
    reference rows; ties: the first in feature order)."""
    sample = ref[:1000]
    base = [model.score(x) >= 0.5 for _, x, _ in sample]
    best, best_flips = "", -1
    for k in sample[0][1]:
        flips = sum(
            (model.score({**x, k: x[k] * factor}) >= 0.5) != b
            for (_, x, _), b in zip(sample, base, strict=True)
        )
        if flips > best_flips:
            best, best_flips = k, flips
    return best


def _shuttle(name: str, quick: bool, seed: int, units: bool) -> Case:
    sz = _sizes(quick, 10_000, 5000)
    n, onset = sz.n(40_000), sz.n(20_000)
    data = _plain(_bundled("Shuttle"))
    train, ref, held = _split(data, _rng(seed, name, "split"), sz.train, sz.reference)
    model = _fit(_hoeffding(), train)
    picks = _bootstrap(held, _rng(seed, name, "bootstrap"), n)
    samples = [held[i] for i in picks]
    source = (
        f"river.datasets.Shuttle: train {sz.train} / reference {sz.reference} / held-out "
        f"{len(held)} (seeded shuffle); rows bootstrapped from the held-out part"
    )
    incidents: tuple[Truth, ...] = ()
    if units:
        feat = _unit_feature(model, ref, 1000.0)
        for j in range(onset, n):
            fs, x, y = samples[j]
            v = x[feat] * 1000.0
            samples[j] = ({**fs, feat: v}, {**x, feat: v}, y)
        source += f"; from the onset {feat} x1000"
        incidents = (
            Truth(onset, None, True, "data_quality",
                  f"unit change: {feat} (the input the model is most sensitive to) arrives "
                  "multiplied by 1000"),
        )
    modes = _label_modes(_rng(seed, name, "modes"), n, DEFAULT_MODES)
    return Case(
        name=name,
        source=source,
        model_id=name.replace("_", "-"),
        model=_config(),
        reference=_reference(model, ref),
        rows=_serve(model, samples, modes),
        incidents=incidents,
    )


def _shuttle_stationary(quick: bool, seed: int) -> Case:
    return _shuttle("shuttle_stationary", quick, seed, units=False)


def _shuttle_units(quick: bool, seed: int) -> Case:
    return _shuttle("shuttle_units", quick, seed, units=True)


_BUILDERS: dict[str, Callable[[bool, int], Case]] = {
    "sea_abrupt": _sea_abrupt,
    "agrawal_gradual": _agrawal_gradual,
    "hyperplane": _hyperplane,
    "agrawal_multi": _agrawal_multi,
    "sea_stationary": _sea_stationary,
    "agrawal_stationary": _agrawal_stationary,
    "agrawal_nulls": _agrawal_nulls,
    "agrawal_benign": _agrawal_benign,
    "sea_covariate": _sea_covariate,
    "canary_version": _canary_version,
    "bananas_stationary": _bananas_stationary,
    "shuttle_stationary": _shuttle_stationary,
    "shuttle_units": _shuttle_units,
}


def case_names() -> list[str]:
    return list(_BUILDERS)


def build_case(name: str, *, quick: bool = False, seed: int = 7) -> Case:
    """One case by name (the same rows as in :func:`build_cases`)."""
    return _BUILDERS[name](quick, seed)


def build_cases(*, quick: bool = False, seed: int = 7) -> list[Case]:
    return [build(quick, seed) for build in _BUILDERS.values()]


# ---------------------------------------------------------------------------------------------
# measuring


def accuracy(rows: Iterable[Row]) -> float:
    """Share of rows whose prediction equals the label (nan for no rows)."""
    n = hits = 0
    for r in rows:
        n += 1
        hits += r.prediction == r.label
    return hits / n if n else math.nan


def incident_accuracy(case: Case, truth: Truth) -> tuple[float, float]:
    """Accuracy on the rows just before ``truth`` (from the end of the last incident that ended
    before it, or the start) and during it (onset to end)."""
    start = max([t.end for t in case.incidents if t.end is not None and t.end <= truth.onset],
                default=0)
    end = len(case.rows) if truth.end is None else truth.end
    return accuracy(case.rows[start : truth.onset]), accuracy(case.rows[truth.onset : end])


def _summary(case: Case) -> str:
    parts = [
        f"{case.name:<19} rows={len(case.rows):>6} ref={len(case.reference):>5} "
        f"ref_acc={accuracy(case.reference):.3f}"
    ]
    if not case.incidents:
        parts.append(f"acc={accuracy(case.rows):.3f} no incident")
    for t in case.incidents:
        before, after = incident_accuracy(case, t)
        end = "end" if t.end is None else str(t.end)
        flag = "actionable" if t.actionable else "benign"
        parts.append(
            f"[{t.onset}..{end}) {flag} {t.kind}: acc {before:.3f} -> {after:.3f} "
            f"({after - before:+.3f})"
        )
    versions = sorted({r.version for r in case.rows})
    if len(versions) > 1:
        onset = case.incidents[0].onset if case.incidents else 0
        tail = case.rows[onset:]
        parts.append(
            "after onset " + ", ".join(
                f"{v}: {sum(r.version == v for r in tail) / len(tail):.1%} of rows, "
                f"acc {accuracy(r for r in tail if r.version == v):.3f}"
                for v in versions
            )
        )
    return "  ".join(parts)


def _iter_timed(quick: bool, seed: int) -> Iterator[tuple[Case, float]]:
    for name in case_names():
        t0 = time.perf_counter()
        case = build_case(name, quick=quick, seed=seed)
        yield case, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    total = 0.0
    for case, seconds in _iter_timed(args.quick, args.seed):
        total += seconds
        print(f"{_summary(case)}  ({seconds:.1f}s)")
    print(f"built in {total:.1f}s")


if __name__ == "__main__":
    main()
