"""Seeded synthetic event streams with known, injected incidents (test and benchmark data).

Every scenario is the event stream of one production model, ``car_loan`` version ``v7``: a
binary classifier that flags risky car-loan applications (label 1 = the loan later goes bad).
A scenario is fully determined by its name, its seed and its sizes: the same arguments always
give the same events, line for line.

The synthetic model
-------------------
* 20 features, 14 numeric and 6 categorical (see ``NUMERIC_FEATURES`` and
  ``CATEGORICAL_FEATURES``). Only six of them carry signal: ``credit_score``,
  ``debt_to_income``, ``car_value`` (log scale), ``driver_age``, ``driver_tenure`` and
  ``salary_range``. All the others, notably ``promo_score``, ``app_latency_ms``,
  ``session_pages`` and ``referral_source``, have zero weight. ``driver_tenure`` is null in
  about 2 % of the events (its true value still drives the label; the model imputes the mean).
* The truth: ``y ~ Bernoulli(sigmoid(s(x)))`` where ``s`` is a linear score of the
  standardised relevant features plus a ``salary_range`` effect. About 30 % of the labels are 1.
* The model: ``prediction = 1 if s_model(x) > 0.5 else 0`` (a logit: score > 0.62) and
  ``score = sigmoid(s_model(x))``, where ``s_model`` is the same score computed on the
  features *as the model receives them* (so corrupted inputs change the predictions; numeric
  strings are coerced to numbers, nulls are imputed with the mean). The positive threshold
  makes it a little conservative on the positive class (it predicts 1 for about 24 % of the
  applications). Its accuracy is about 0.88.
* Events (CONTRACT §1), in file order: one prediction per second of event time on average from
  2019-03-01T00:00:00Z. About 20 % of the predictions carry their ``label`` inline, about 60 %
  get an ``outcome`` event 200 to 2,000 lines later, the rest are never labelled. After about
  one prediction in 20 a ``metric`` event ``subscribed`` (0.0 or 1.0, P(1) = 0.30) is emitted.
  The ``channel`` tag is ``web`` (60 %), ``mobile`` (30 %) or ``branch`` (10 %).
* The reference is ``reference_size`` labelled prediction events drawn from the normal
  distribution with an RNG stream of its own.

The scenarios
-------------
Incidents start at the first prediction after 40 % of the predictions and last to the end.
Before the onset every scenario with the same seed and size produces the same events.

* ``stationary``: nothing changes; no incident.
* ``benign_drift``: ``promo_score``, ``app_latency_ms`` and ``session_pages`` shift by about
  +2 sd and the ``referral_source`` mix changes. The model ignores all four, so predictions and
  accuracy are exactly those of ``stationary`` (not actionable).
* ``harmful_drift``: ``car_value`` shifts by +1.5 sd (log scale) and its true coefficient
  flips sign (covariate + concept drift); the unchanged model loses about 0.14 of accuracy.
* ``broken_pipeline``: ``driver_tenure`` becomes null half of the time and ``car_value``
  arrives multiplied by 1000 (a unit change); the model's predictions collapse.
* ``schema_change``: ``region`` is renamed ``region_code`` and ``driver_age`` arrives as a
  string such as ``"42"`` (the model coerces it, so its predictions are unchanged).
* ``label_shift``: the positive rate goes from about 0.3 to about 0.6 (rejection sampling on
  the label, so features follow the class-conditional distribution); the conservative model
  loses about 0.08 of accuracy.
* ``failing_slice``: for ``salary_range == "< 20K"`` (about 4.5 % of the traffic) 43 % of the
  labels are flipped: that slice's accuracy falls by about 0.3, the global accuracy by less
  than 0.02 (about 0.014 in expectation).
* ``business_metric_drop``: P(``subscribed`` = 1) goes from 0.30 to 0.18; the model's inputs
  and outputs are unchanged.

Each incident carries its ground truth: the 0-based line index of its first affected event,
whether a person must act, and the signals (:class:`Expectation`) the monitoring core should
raise. The expectations are the signals that must be raised; their consequences may also
legitimately appear (e.g. ``prediction_drift`` in ``harmful_drift`` and ``label_shift``, drift of
relevant features in ``label_shift``, ``performance`` and ``prediction_drift`` in
``broken_pipeline``).

>>> scenario = generate("stationary", predictions=1_000, reference_size=200)
>>> len(scenario.incidents), len(scenario.reference)
(0, 200)
>>> first = scenario.events[0]
>>> first["type"], first["ts"], first["model_id"]
('prediction', '2019-03-01T00:00:00Z', 'car_loan')
>>> drift = generate("harmful_drift", predictions=1_000)
>>> [(e.kind, e.subject) for e in drift.incidents[0].expect]
[('performance', 'accuracy'), ('drift', 'car_value')]
>>> drift.events[drift.incidents[0].onset_index]["request_id"]
'req-0000400'
"""

from __future__ import annotations

import copy
import heapq
import json
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import yaml

__all__ = [
    "CATEGORICAL_FEATURES",
    "MODEL_ID",
    "MODEL_VERSION",
    "NUMERIC_FEATURES",
    "SCENARIOS",
    "Expectation",
    "InjectedIncident",
    "Scenario",
    "ScenarioFiles",
    "generate",
    "write_scenario",
]

SCENARIOS: tuple[str, ...] = (
    "stationary",
    "benign_drift",
    "harmful_drift",
    "broken_pipeline",
    "schema_change",
    "label_shift",
    "failing_slice",
    "business_metric_drop",
)

MODEL_ID = "car_loan"
MODEL_VERSION = "v7"

NUMERIC_FEATURES: tuple[str, ...] = (
    "car_value",
    "driver_age",
    "driver_tenure",
    "credit_score",
    "debt_to_income",
    "annual_mileage",
    "loan_term_months",
    "down_payment_pct",
    "vehicle_age_years",
    "num_prior_claims",
    "years_at_address",
    "promo_score",
    "app_latency_ms",
    "session_pages",
)
CATEGORICAL_FEATURES: dict[str, tuple[str, ...]] = {
    "salary_range": ("< 20K", "20K - 40K", "40K - 60K €", "60K - 100K", "> 100K"),
    "region": ("north", "south", "east", "west", "centre", "islands"),
    "vehicle_type": ("sedan", "suv", "hatchback", "van", "pickup", "coupe"),
    "employment_type": ("salaried", "self_employed", "contractor", "retired", "student"),
    "fuel_type": ("petrol", "diesel", "hybrid", "electric"),
    "referral_source": ("search", "social", "dealer", "partner", "direct"),
}
_CATEGORY_PROBS: dict[str, tuple[float, ...]] = {
    "salary_range": (0.045, 0.30, 0.335, 0.22, 0.10),
    "region": (0.20, 0.20, 0.18, 0.18, 0.16, 0.08),
    "vehicle_type": (0.34, 0.26, 0.18, 0.09, 0.08, 0.05),
    "employment_type": (0.62, 0.14, 0.12, 0.08, 0.04),
    "fuel_type": (0.45, 0.30, 0.15, 0.10),
    "referral_source": (0.35, 0.15, 0.25, 0.15, 0.10),
}
_BENIGN_REFERRAL_PROBS = (0.10, 0.45, 0.10, 0.10, 0.25)
_FEATURE_ORDER: tuple[str, ...] = (
    "car_value",
    "driver_age",
    "driver_tenure",
    "salary_range",
    "region",
    "credit_score",
    "debt_to_income",
    "annual_mileage",
    "loan_term_months",
    "down_payment_pct",
    "vehicle_age_years",
    "num_prior_claims",
    "years_at_address",
    "vehicle_type",
    "employment_type",
    "fuel_type",
    "referral_source",
    "promo_score",
    "app_latency_ms",
    "session_pages",
)
# Decimals per numeric feature in the events; 0 means the value is written as an integer.
_DECIMALS: dict[str, int] = {
    "car_value": 2,
    "driver_age": 0,
    "driver_tenure": 1,
    "credit_score": 0,
    "debt_to_income": 3,
    "annual_mileage": 0,
    "loan_term_months": 0,
    "down_payment_pct": 1,
    "vehicle_age_years": 1,
    "num_prior_claims": 0,
    "years_at_address": 1,
    "promo_score": 2,
    "app_latency_ms": 1,
    "session_pages": 0,
}

# The true (and model) score: standardised relevant features, weights, salary effects.
_CAR_LOG_MEAN = float(np.log(30_000.0))
_CAR_LOG_SD = 0.45
_STANDARDISE: dict[str, tuple[float, float]] = {
    "credit_score": (680.0, 70.0),
    "debt_to_income": (0.3125, 0.1545),
    "driver_age": (43.1, 12.7),
    "driver_tenure": (15.07, 9.47),
}
_WEIGHTS: dict[str, float] = {
    "credit_score": -1.0,
    "debt_to_income": 0.8,
    "car_value": 0.45,
    "driver_age": -0.35,
    "driver_tenure": -0.3,
}
_SALARY_EFFECT = np.array([1.0, 0.4, 0.0, -0.4, -0.8])
_SCALE = 2.4
_INTERCEPT = -2.1
_THRESHOLD = 0.5

_START = np.datetime64("2019-03-01T00:00:00", "s")
_REFERENCE_START = np.datetime64("2019-02-01T00:00:00", "s")
_ONSET_FRACTION = (2, 5)  # onset: the first prediction after 40 % of the predictions
_TENURE_NULL_RATE = 0.02
_BROKEN_TENURE_NULL_RATE = 0.5
_UNIT_CHANGE = 1000.0
_METRIC_EVERY = 20
_SUBSCRIBED_P = 0.30
_SUBSCRIBED_P_DROPPED = 0.18
_LABEL_SHIFT_PRIOR = 0.6
_SLICE_FLIP_P = 0.43
_FAILING_SLICE = ("salary_range", "< 20K")
_CHANNELS = ("web", "mobile", "branch")
_CHANNEL_PROBS = (0.6, 0.3, 0.1)
_OUTCOME_DELAY = (200, 2_000)

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]
_Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Expectation:
    """A signal the monitoring core is expected to raise for an incident."""

    kind: str
    subject: str
    slice: str | None = None


@dataclass(frozen=True)
class InjectedIncident:
    """An injected incident and its ground truth."""

    name: str
    onset_index: int
    actionable: bool
    expect: tuple[Expectation, ...]
    description: str


@dataclass(frozen=True)
class Scenario:
    """A generated scenario: events in file order, the reference, the config and the truth."""

    name: str
    seed: int
    events: list[dict[str, object]]
    reference: list[dict[str, object]]
    config: dict[str, object]
    incidents: tuple[InjectedIncident, ...]


@dataclass(frozen=True)
class ScenarioFiles:
    """The four files written by :func:`write_scenario`."""

    events: Path
    reference: Path
    config: Path
    truth: Path


@dataclass
class _Population:
    """True feature values of ``n`` applications (categoricals as codes)."""

    num: dict[str, _Floats]
    cat: dict[str, _Ints]
    tenure_null: _Bools

    def __len__(self) -> int:
        return len(self.tenure_null)

    def replace_tail(self, start: int, other: _Population) -> None:
        """Overwrite rows ``start:`` with the rows of ``other`` (same length as the tail)."""
        for key, values in self.num.items():
            values[start:] = other.num[key]
        for key, codes in self.cat.items():
            codes[start:] = other.cat[key]
        self.tenure_null[start:] = other.tenure_null

    def take(self, rows: _Ints) -> _Population:
        return _Population(
            num={k: v[rows] for k, v in self.num.items()},
            cat={k: v[rows] for k, v in self.cat.items()},
            tenure_null=self.tenure_null[rows],
        )


def _round(values: _Floats, name: str) -> _Floats:
    return np.round(values, _DECIMALS[name])


def _draw_population(rng: np.random.Generator, n: int) -> _Population:
    """Draw ``n`` applications from the normal (pre-incident) distribution."""
    age = np.clip(np.round(rng.normal(43.0, 13.0, n)), 18.0, 90.0)
    num: dict[str, _Floats] = {
        "car_value": rng.lognormal(_CAR_LOG_MEAN, _CAR_LOG_SD, n),
        "driver_age": age,
        "driver_tenure": (age - 18.0) * rng.beta(3.0, 2.0, n),
        "credit_score": np.clip(rng.normal(680.0, 70.0, n), 300.0, 850.0),
        "debt_to_income": rng.beta(2.5, 5.5, n),
        "annual_mileage": rng.lognormal(np.log(12_000.0), 0.4, n),
        "loan_term_months": rng.choice(
            np.array([24.0, 36.0, 48.0, 60.0, 72.0]), n, p=[0.1, 0.25, 0.25, 0.3, 0.1]
        ),
        "down_payment_pct": rng.beta(2.0, 8.0, n) * 100.0,
        "vehicle_age_years": rng.gamma(2.0, 2.0, n),
        "num_prior_claims": rng.poisson(0.3, n).astype(np.float64),
        "years_at_address": rng.gamma(2.0, 3.0, n),
        "promo_score": rng.normal(50.0, 12.0, n),
        "app_latency_ms": rng.lognormal(np.log(180.0), 0.35, n),
        "session_pages": (rng.poisson(6.0, n) + 1).astype(np.float64),
    }
    num = {name: _round(num[name], name) for name in NUMERIC_FEATURES}
    cat: dict[str, _Ints] = {
        name: rng.choice(len(values), n, p=_CATEGORY_PROBS[name]).astype(np.int64)
        for name, values in CATEGORICAL_FEATURES.items()
    }
    tenure_null = rng.random(n) < _TENURE_NULL_RATE
    return _Population(num=num, cat=cat, tenure_null=tenure_null)


def _sigmoid(x: _Floats) -> _Floats:
    result: _Floats = 1.0 / (1.0 + np.exp(-x))
    return result


def _logit(num: dict[str, _Floats], salary: _Ints, car_weight: float | _Floats) -> _Floats:
    """The linear score on (possibly NaN = imputed) numeric values and salary codes."""
    total = np.zeros(len(salary))
    for name, (mean, sd) in _STANDARDISE.items():
        z = (num[name] - mean) / sd
        total += _WEIGHTS[name] * np.where(np.isnan(z), 0.0, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        car_z = (np.log(num["car_value"]) - _CAR_LOG_MEAN) / _CAR_LOG_SD
    total += car_weight * np.where(np.isfinite(car_z), car_z, 0.0)
    total += _SALARY_EFFECT[salary]
    result: _Floats = _SCALE * total + _INTERCEPT
    return result


def _true_logit(pop: _Population, car_weight: float | _Floats = _WEIGHTS["car_value"]) -> _Floats:
    return _logit(pop.num, pop.cat["salary_range"], car_weight)


def _model_outputs(received: dict[str, _Floats], salary: _Ints) -> tuple[_Ints, _Floats]:
    s = _logit(received, salary, _WEIGHTS["car_value"])
    prediction = (s > _THRESHOLD).astype(np.int64)
    score: _Floats = np.round(_sigmoid(s), 4)
    return prediction, score


def _received(pop: _Population) -> dict[str, _Floats]:
    """Numeric values as the model receives them in normal operation (NaN = null)."""
    received = {k: v.copy() for k, v in pop.num.items()}
    received["driver_tenure"][pop.tenure_null] = np.nan
    return received


def _timestamps(start: np.datetime64, gaps: _Floats) -> list[str]:
    seconds = np.floor(np.cumsum(gaps) - gaps[0]).astype(np.int64)
    stamps = np.datetime_as_string(start + seconds.astype("timedelta64[s]"), unit="s")
    return [f"{s}Z" for s in stamps.tolist()]


def _column(values: _Floats, name: str, nulls: _Bools | None = None) -> list[object]:
    column: list[object]
    if _DECIMALS[name] == 0:
        column = list(values.astype(np.int64).tolist())
    else:
        column = list(values.tolist())
    if nulls is not None:
        for i in np.flatnonzero(nulls).tolist():
            column[i] = None
    return column


def _feature_dicts(
    received: dict[str, _Floats],
    cat: dict[str, _Ints],
    *,
    schema_change_at: int | None = None,
) -> list[dict[str, object]]:
    """Feature dicts in event order; from ``schema_change_at`` on, the schema is changed."""
    n = len(cat["salary_range"])
    columns: dict[str, list[object]] = {}
    for name in NUMERIC_FEATURES:
        values = received[name]
        nulls = np.isnan(values)
        filled = np.where(nulls, 0.0, values)
        columns[name] = _column(filled, name, nulls if nulls.any() else None)
    for name, labels in CATEGORICAL_FEATURES.items():
        lookup = np.array(labels, dtype=object)
        columns[name] = list(lookup[cat[name]].tolist())
    names = _FEATURE_ORDER
    change = n if schema_change_at is None else schema_change_at
    before = zip(*(columns[name][:change] for name in names), strict=True)
    feats: list[dict[str, object]] = [dict(zip(names, row, strict=True)) for row in before]
    if change < n:
        columns["driver_age"] = [str(age) for age in columns["driver_age"]]
        renamed = tuple("region_code" if name == "region" else name for name in names)
        after = zip(*(columns[name][change:] for name in names), strict=True)
        feats.extend(dict(zip(renamed, row, strict=True)) for row in after)
    return feats


def _channels(rng: np.random.Generator, n: int) -> list[str]:
    codes = rng.choice(len(_CHANNELS), n, p=_CHANNEL_PROBS)
    return list(np.array(_CHANNELS, dtype=object)[codes].tolist())


def _prediction_event(
    event_id: str,
    ts: str,
    request_id: str,
    features: dict[str, object],
    prediction: int,
    score: float,
    label: int | None,
    channel: str,
) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "prediction",
        "event_id": event_id,
        "ts": ts,
        "model_id": MODEL_ID,
        "model_version": MODEL_VERSION,
        "request_id": request_id,
        "features": features,
        "prediction": prediction,
        "score": score,
    }
    if label is not None:
        event["label"] = label
    event["tags"] = {"channel": channel}
    return event


def _reference(seed: int, size: int) -> list[dict[str, object]]:
    rng = np.random.default_rng([seed, 1])
    pop = _draw_population(rng, size)
    y = (rng.random(size) < _sigmoid(_true_logit(pop))).astype(np.int64)
    received = _received(pop)
    prediction, score = _model_outputs(received, pop.cat["salary_range"])
    feats = _feature_dicts(received, pop.cat)
    ts = _timestamps(_REFERENCE_START, rng.exponential(1.0, size))
    channels = _channels(rng, size)
    labels = y.tolist()
    preds = prediction.tolist()
    scores = score.tolist()
    return [
        _prediction_event(
            f"ref-ev-{i:07d}",
            ts[i],
            f"ref-req-{i:07d}",
            feats[i],
            preds[i],
            scores[i],
            labels[i],
            channels[i],
        )
        for i in range(size)
    ]


def _label_shifted(rng: np.random.Generator, n: int) -> tuple[_Population, _Floats]:
    """``n`` applications whose class prior is ``_LABEL_SHIFT_PRIOR`` (rejection on y).

    Returns the population and label uniforms that reproduce each accepted row's label.
    """
    base_prior = 0.3
    keep_negative = base_prior * (1 - _LABEL_SHIFT_PRIOR) / ((1 - base_prior) * _LABEL_SHIFT_PRIOR)
    parts: list[_Population] = []
    uniforms: list[_Floats] = []
    have = 0
    while have < n:
        batch = max(3 * (n - have), 1_000)
        cand = _draw_population(rng, batch)
        u = rng.random(batch)
        y = u < _sigmoid(_true_logit(cand))
        accept = y | (rng.random(batch) < keep_negative)
        rows = np.flatnonzero(accept)[: n - have].astype(np.int64)
        parts.append(cand.take(rows))
        uniforms.append(u[rows])
        have += len(rows)
    pop = _Population(
        num={k: np.concatenate([p.num[k] for p in parts]) for k in parts[0].num},
        cat={k: np.concatenate([p.cat[k] for p in parts]) for k in parts[0].cat},
        tenure_null=np.concatenate([p.tenure_null for p in parts]),
    )
    return pop, np.concatenate(uniforms)


def _incident(name: str, onset_index: int) -> InjectedIncident:
    slice_name = f"{_FAILING_SLICE[0]}={_FAILING_SLICE[1]}"
    specs: dict[str, tuple[bool, tuple[Expectation, ...], str]] = {
        "benign_drift": (
            False,
            (
                Expectation("drift", "promo_score"),
                Expectation("drift", "app_latency_ms"),
                Expectation("drift", "session_pages"),
                Expectation("drift", "referral_source"),
            ),
            "promo_score, app_latency_ms and session_pages shift by about +2 sd and the "
            "referral_source mix changes; the model ignores all four, accuracy is unchanged",
        ),
        "harmful_drift": (
            True,
            (Expectation("performance", "accuracy"), Expectation("drift", "car_value")),
            "car_value shifts by +1.5 sd (log scale) and its true effect on risk reverses "
            "(concept drift); the unchanged model loses more than 0.10 of accuracy",
        ),
        "broken_pipeline": (
            True,
            (
                Expectation("data_quality", "driver_tenure"),
                Expectation("data_quality", "car_value"),
                Expectation("drift", "car_value"),
            ),
            "an upstream pipeline breaks: driver_tenure is null about half of the time and "
            "car_value arrives multiplied by 1000 (unit change); predictions are corrupted",
        ),
        "schema_change": (
            True,
            (
                Expectation("schema", "region"),
                Expectation("schema", "region_code"),
                Expectation("schema", "driver_age"),
            ),
            "the client changes its payload: region is renamed region_code and driver_age "
            "is sent as a string",
        ),
        "label_shift": (
            True,
            (Expectation("label_drift", "label"), Expectation("performance", "accuracy")),
            "the share of risky applications rises from about 0.3 to about 0.6; the "
            "conservative model misses more positives and loses more than 0.05 of accuracy",
        ),
        "failing_slice": (
            True,
            (Expectation("performance", "accuracy", slice_name),),
            "for salary_range '< 20K' the relationship between features and risk breaks "
            "(43 % of the labels flip): that slice's accuracy falls by about 0.3 while the "
            "global accuracy falls by less than 0.02",
        ),
        "business_metric_drop": (
            True,
            (Expectation("business_metric", "subscribed"),),
            "the subscription rate falls from 0.30 to 0.18; the model's inputs and outputs "
            "are unchanged",
        ),
    }
    actionable, expect, description = specs[name]
    return InjectedIncident(name, onset_index, actionable, expect, description)


def _config(name: str) -> dict[str, object]:
    return {
        "models": {
            MODEL_ID: {
                "task": "binary_classification",
                "reference": f"{name}.reference.jsonl",
                "features": {
                    "car_value": {"type": "numeric", "min": 0},
                    "driver_age": {"type": "numeric", "min": 18, "max": 100},
                    "driver_tenure": {"type": "numeric", "min": 0},
                },
                "slices": ["salary_range", "channel"],
                "performance": {"metric": "accuracy", "max_drop": 0.02},
                "business_metrics": {"subscribed": {"max_drop": 0.1}},
            }
        }
    }


def generate(
    name: str,
    *,
    predictions: int = 40_000,
    seed: int = 7,
    reference_size: int = 5_000,
    model_id: str = MODEL_ID,
) -> Scenario:
    """Generate scenario ``name`` with ``predictions`` prediction events (deterministic).

    ``model_id`` renames the model, so that several scenarios can share one store.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(SCENARIOS)}")
    if predictions < 1_000:
        raise ValueError(f"predictions must be at least 1000, got {predictions}")
    if reference_size < 1:
        raise ValueError(f"reference_size must be at least 1, got {reference_size}")
    n = predictions
    onset = -(-n * _ONSET_FRACTION[0] // _ONSET_FRACTION[1])

    # Base draws: identical for every scenario with the same seed and size.
    rng = np.random.default_rng([seed, 0])
    pop = _draw_population(rng, n)
    u_label = rng.random(n)
    label_route = rng.random(n)  # < 0.2 inline label, < 0.8 outcome event, else never
    delays = rng.integers(_OUTCOME_DELAY[0], _OUTCOME_DELAY[1] + 1, n)
    metric_after = rng.random(n) < 1.0 / _METRIC_EVERY
    metric_u = rng.random(n)
    channels = _channels(rng, n)
    ts = _timestamps(_START, rng.exponential(1.0, n))

    # Incident-specific draws come from a stream of their own.
    inc = np.random.default_rng([seed, 2])
    tail = slice(onset, n)
    car_weight: float | _Floats = _WEIGHTS["car_value"]
    if name == "benign_drift":
        pop.num["promo_score"][tail] += 2 * 12.0
        pop.num["app_latency_ms"][tail] += 2 * 69.0
        pop.num["session_pages"][tail] += 5.0
        referral = inc.choice(len(_BENIGN_REFERRAL_PROBS), n - onset, p=_BENIGN_REFERRAL_PROBS)
        pop.cat["referral_source"][tail] = referral
    elif name == "harmful_drift":
        shifted = pop.num["car_value"][tail] * np.exp(1.5 * _CAR_LOG_SD)
        pop.num["car_value"][tail] = _round(shifted, "car_value")
        weights = np.full(n, _WEIGHTS["car_value"])
        weights[tail] = -_WEIGHTS["car_value"]
        car_weight = weights
    elif name == "label_shift":
        shifted_pop, shifted_u = _label_shifted(inc, n - onset)
        pop.replace_tail(onset, shifted_pop)
        u_label[tail] = shifted_u

    y = (u_label < _sigmoid(_true_logit(pop, car_weight))).astype(np.int64)
    if name == "failing_slice":
        code = CATEGORICAL_FEATURES[_FAILING_SLICE[0]].index(_FAILING_SLICE[1])
        in_slice = pop.cat[_FAILING_SLICE[0]] == code
        flip = inc.random(n) < _SLICE_FLIP_P
        flip[:onset] = False
        y = np.where(in_slice & flip, 1 - y, y)

    received = _received(pop)
    if name == "broken_pipeline":
        received["driver_tenure"][tail] = np.where(
            inc.random(n - onset) < _BROKEN_TENURE_NULL_RATE, np.nan, pop.num["driver_tenure"][tail]
        )
        received["car_value"][tail] = _round(pop.num["car_value"][tail] * _UNIT_CHANGE, "car_value")
    prediction, score = _model_outputs(received, pop.cat["salary_range"])
    feats = _feature_dicts(
        received, pop.cat, schema_change_at=onset if name == "schema_change" else None
    )

    subscribed_p = np.full(n, _SUBSCRIBED_P)
    if name == "business_metric_drop":
        subscribed_p[tail] = _SUBSCRIBED_P_DROPPED
    subscribed = (metric_u < subscribed_p).astype(np.float64).tolist()

    labels = y.tolist()
    preds = prediction.tolist()
    scores = score.tolist()
    route = label_route.tolist()
    delay = delays.tolist()
    metric = metric_after.tolist()
    events: list[dict[str, object]] = []
    pending: list[tuple[int, int, str, int]] = []
    onset_line = onset_prediction_line = -1
    for i in range(n):
        request_id = f"req-{i:07d}"
        line = len(events)
        if i == onset:
            onset_prediction_line = line
            if name != "business_metric_drop":
                onset_line = line
        inline = labels[i] if route[i] < 0.2 else None
        events.append(
            _prediction_event(
                f"ev-{i:07d}", ts[i], request_id, feats[i], preds[i], scores[i], inline, channels[i]
            )
        )
        if 0.2 <= route[i] < 0.8:
            heapq.heappush(pending, (line + delay[i], i, request_id, labels[i]))
        if metric[i]:
            if i >= onset and onset_line < 0:
                onset_line = len(events)
            events.append(
                {
                    "type": "metric",
                    "ts": ts[i],
                    "model_id": MODEL_ID,
                    "model_version": MODEL_VERSION,
                    "name": "subscribed",
                    "value": subscribed[i],
                }
            )
        while pending and pending[0][0] <= len(events):
            _, _, rid, label = heapq.heappop(pending)
            events.append(_outcome(ts[i], rid, label))
    while pending:
        _, _, rid, label = heapq.heappop(pending)
        events.append(_outcome(ts[n - 1], rid, label))

    if onset_line < 0:  # no metric event after the onset (practically impossible)
        onset_line = onset_prediction_line
    incidents: tuple[InjectedIncident, ...] = ()
    if name != "stationary":
        incidents = (_incident(name, onset_line),)
    reference = _reference(seed, reference_size)
    config = _config(name)
    if model_id != MODEL_ID:
        for event in (*events, *reference):
            event["model_id"] = model_id
        models = config["models"]
        assert isinstance(models, dict)
        models[model_id] = models.pop(MODEL_ID)
    return Scenario(
        name=name,
        seed=seed,
        events=events,
        reference=reference,
        config=config,
        incidents=incidents,
    )


def _outcome(ts: str, request_id: str, label: int) -> dict[str, object]:
    return {
        "type": "outcome",
        "ts": ts,
        "model_id": MODEL_ID,
        "request_id": request_id,
        "label": label,
    }


def _truth(scenario: Scenario) -> dict[str, object]:
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "lines": len(scenario.events),
        "predictions": sum(1 for e in scenario.events if e["type"] == "prediction"),
        "reference_size": len(scenario.reference),
        "incidents": [
            {
                "name": incident.name,
                "onset_index": incident.onset_index,
                "onset_ts": scenario.events[incident.onset_index]["ts"],
                "actionable": incident.actionable,
                "description": incident.description,
                "expect": [
                    {"kind": e.kind, "subject": e.subject, "slice": e.slice}
                    for e in incident.expect
                ],
            }
            for incident in scenario.incidents
        ],
    }


def write_scenario(scenario: Scenario, out: Path) -> ScenarioFiles:
    """Write the events to ``out`` and the reference, config and truth beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.stem
    files = ScenarioFiles(
        events=out,
        reference=out.with_name(f"{stem}.reference.jsonl"),
        config=out.with_name(f"{stem}.config.yaml"),
        truth=out.with_name(f"{stem}.truth.json"),
    )
    encoder = msgspec.json.Encoder()
    files.events.write_bytes(encoder.encode_lines(scenario.events))
    files.reference.write_bytes(encoder.encode_lines(scenario.reference))
    config = copy.deepcopy(scenario.config)
    models = config.get("models")
    if isinstance(models, dict):
        for model in models.values():
            if isinstance(model, dict):
                model["reference"] = files.reference.name
    files.config.write_text(
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    files.truth.write_text(
        json.dumps(_truth(scenario), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return files
