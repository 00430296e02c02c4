"""Configuration: the YAML file of CONTRACT §2, validated into typed, frozen settings.

Every key has a default that works for the CONTRACT example; unknown keys are refused so
that a typo cannot silently disable a check. Errors are one line and name the key:

>>> load_config_text("models: {m: {task: regression, reference: r.jsonl, wat: 1}}")
Traceback (most recent call last):
...
config.errors.ConfigError: models.m.wat: Extra inputs are not permitted
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.errors import ConfigError
from config.kinds import Kind

Task = Literal["binary_classification", "multiclass_classification", "regression"]
MetricName = Literal["accuracy", "roc_auc", "f1", "mae", "rmse"]
FeatureType = Literal["numeric", "categorical", "boolean"]

HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "roc_auc": True,
    "f1": True,
    "mae": False,
    "rmse": False,
}
CLASSIFICATION_METRICS = frozenset({"accuracy", "roc_auc", "f1"})
REGRESSION_METRICS = frozenset({"mae", "rmse"})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Frozen):
    """One model input: its type and optional hard bounds (``min``/``max``, numeric only)."""

    type: FeatureType
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> FeatureSpec:
        if self.type != "numeric" and (self.min is not None or self.max is not None):
            raise ValueError("min/max apply to numeric features only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class PerformanceSpec(_Frozen):
    """The model's headline metric and how far it may fall before a person must act.

    ``max_drop`` is absolute, in the metric's own units: for accuracy/roc_auc/f1 a fall
    below the reference value, for mae/rmse a rise above it.
    """

    metric: MetricName = "accuracy"
    max_drop: float = Field(default=0.02, ge=0)
    expect_labels: bool = True  # false: the model gets no labels; do not warn of it


class BusinessMetricSpec(_Frozen):
    """A business/product metric; ``max_drop`` is relative to its reference mean."""

    max_drop: float = Field(default=0.1, gt=0)
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"


class DriftSettings(_Frozen):
    psi_threshold: float = Field(default=0.2, gt=0)
    bins: int = Field(default=10, ge=2, le=100)


class QualitySettings(_Frozen):
    """Minimum rises (absolute rates) over the reference that a data-quality signal needs.

    Memory bounds, per column and window: the first ``max_unseen_values`` distinct unseen
    categories are counted by value (the examples of a signal), the rest only in the rate
    and as untracked; the first ``max_new_features`` names not in the reference likewise."""

    null_rate_increase: float = Field(default=0.05, gt=0, le=1)
    out_of_bounds_rate: float = Field(default=0.01, gt=0, le=1)
    out_of_range_rate: float = Field(default=0.05, gt=0, le=1)
    unseen_category_rate: float = Field(default=0.05, gt=0, le=1)
    schema_rate: float = Field(default=0.01, gt=0, le=1)
    max_unseen_values: int = Field(default=100, ge=1)
    max_new_features: int = Field(default=100, ge=1)


class PerformanceSettings(_Frozen):
    """Performance with delayed labels: a CUSUM per series (overall, slices, versions)
    alarms when its evidence reaches ``cusum_h`` (a log-likelihood ratio: at most one false
    alarm per ``exp(cusum_h)`` labels per series on a model as good as its reference); every
    ``eval_every`` labels a series is evaluated; ``window_labels`` bounds the evidence kept
    (at least ``min_labels`` of it behind a reported value).

    The label join (:mod:`stream.monitors.join`) pairs an outcome with its prediction when
    it comes at most ``join_ttl_seconds`` after it (90 days: credit and churn labels take
    months); at most ``join_max_pending`` predictions wait at once (the oldest go first);
    an outcome that comes before its prediction waits until the predictions are
    ``join_wait_seconds`` past it; the ids of the last ``join_remember_dropped`` predictions
    dropped unanswered are kept to tell a late label from an unknown one.

    Series are kept for the first ``max_slice_values`` values of each slice dimension and
    the first ``max_versions`` model versions (in event order); labels of the others are
    counted as untracked."""

    window_labels: int = Field(default=1000, ge=50)
    min_labels: int = Field(default=200, ge=20)
    eval_every: int = Field(default=100, ge=1)
    cusum_h: float = Field(default=14.0, gt=0)
    join_ttl_seconds: float = Field(default=90 * 24 * 3600, gt=0)
    join_max_pending: int = Field(default=500_000, ge=1)
    join_wait_seconds: float = Field(default=3600, ge=0)
    join_remember_dropped: int = Field(default=50_000, ge=1)
    max_slice_values: int = Field(default=50, ge=1)
    max_versions: int = Field(default=20, ge=1)
    min_reference_rows: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _sizes(self) -> PerformanceSettings:
        if self.min_labels > self.window_labels:
            raise ValueError("min_labels must not exceed window_labels")
        return self


class HealthSettings(_Frozen):
    """When the labels fail (:mod:`stream.monitors.health`): the share of a window's
    outcomes that may be lost (late, for evicted predictions, for unknown ids), and the
    share of a window's predictions that may carry neither a label nor a ``request_id``."""

    max_lost_label_share: float = Field(default=0.25, gt=0, le=1)
    max_unlabellable_share: float = Field(default=0.9, gt=0, le=1)


class BusinessSettings(_Frozen):
    """Business metrics; at most ``max_metrics`` names are tracked per model (the configured
    ones always, then others in event order); observations of the rest are counted only."""

    reference_observations: int = Field(default=500, ge=10)
    window_observations: int = Field(default=400, ge=10)
    eval_every: int = Field(default=50, ge=1)
    max_metrics: int = Field(default=100, ge=1)


class MonitoringSettings(_Frozen):
    """Statistical settings shared by every model (overridable per model).

    Windows are counts of predictions (``window_events``), so a model's evaluations are the
    same at any traffic rate; ``window_seconds`` also closes a window after that much event
    time (with at least ``min_window_events`` in it), which makes them depend on the rate.
    ``hysteresis`` is the band under each threshold in which a series that fired is not yet
    clear: its effect must fall below ``(1 - hysteresis)`` of the threshold.
    """

    window_events: int = Field(default=1000, ge=10)
    window_seconds: float | None = Field(default=None, gt=0)
    min_window_events: int = Field(default=200, ge=10)
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    hysteresis: float = Field(default=0.2, ge=0, lt=1)
    drift: DriftSettings = DriftSettings()
    quality: QualitySettings = QualitySettings()
    performance: PerformanceSettings = PerformanceSettings()
    business: BusinessSettings = BusinessSettings()
    health: HealthSettings = HealthSettings()

    @model_validator(mode="after")
    def _window(self) -> MonitoringSettings:
        if self.min_window_events > self.window_events:
            raise ValueError("min_window_events must not exceed window_events")
        return self


class Limits(_Frozen):
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    dedupe_capacity: int = Field(default=1_000_000, ge=1)
    # messages kept since the monitors' last copy of their state, to go back to it when a
    # monitor fails on a message (stream.core.Core.process): memory against copies
    recovery_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


class SilenceSpec(_Frozen):
    """A silence from the config file: matchers (None = any) and an expiry (ISO-8601)."""

    ends_at: datetime
    starts_at: datetime | None = None
    model_id: str | None = None
    kind: Kind | None = None
    subject: str | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _aware(self) -> SilenceSpec:
        for name in ("ends_at", "starts_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2019-03-02T00:00:00Z)")
        return self


_REPLACED_BY_EVALUATIONS = {
    "resolve_after_seconds": "resolve_after_evaluations",
    "group_window_seconds": "flap_window_evaluations",
    "flap_window_seconds": "flap_window_evaluations",
}


class TriagePolicy(_Frozen):
    """How signals become alerts, incidents and pages (defaults fit the CONTRACT example).

    Severity is a score in [0, 1]; an incident whose score reaches ``page_threshold`` pages,
    one that reaches ``digest_threshold`` goes to the digest, the rest to history only. An
    alert resolves after ``resolve_after_evaluations`` clear evaluations of its monitor in a
    row; the same condition firing again within ``flap_window_evaluations`` evaluations of
    resolving reopens its incident (no new page) and is a flap; ``flap_threshold`` flaps
    make it *flapping* (muted). Of the values every evaluation reports (its samples, the
    store's snapshots for charts) a series keeps one in ``sample_every`` evaluations, and
    every one at which it fired or changed state (clear, held, fired).
    """

    @model_validator(mode="before")
    @classmethod
    def _no_seconds(cls, data: Any) -> Any:
        """The settings that counted event-time seconds are gone: say what replaced them
        rather than let an old file keep a meaning it no longer has."""
        if isinstance(data, dict):
            for old, new in _REPLACED_BY_EVALUATIONS.items():
                if old in data:
                    raise ValueError(
                        f"{old} is replaced by {new}: triage counts evaluations of the "
                        "monitor, not seconds of event time, so pages do not depend on "
                        "the traffic rate")
        return data

    page_threshold: float = Field(default=0.6, gt=0, le=1)
    digest_threshold: float = Field(default=0.25, ge=0, le=1)
    resolve_after_evaluations: int = Field(default=3, ge=1)
    flap_window_evaluations: int = Field(default=20, ge=0)
    flap_threshold: int = Field(default=3, ge=1)
    sample_every: int = Field(default=5, ge=1)
    min_slice_share: float = Field(default=0.01, ge=0, le=1)
    out_of_range_corruption_rate: float = Field(default=0.5, gt=0, le=1)
    unseen_category_corruption_rate: float = Field(default=0.25, gt=0, le=1)
    not_actionable_factor: float = Field(default=0.5, ge=0, lt=1)
    channel: str = "#ml-oncall"
    silences: list[SilenceSpec] = []

    @model_validator(mode="after")
    def _thresholds(self) -> TriagePolicy:
        if self.digest_threshold > self.page_threshold:
            raise ValueError("digest_threshold must not exceed page_threshold")
        return self


class Shift(_Frozen):
    """One turn of the rotation: Slack user ids."""

    primary: str = Field(min_length=1)
    secondary: str = Field(min_length=1)


class OnCallSpec(_Frozen):
    """Who is paged: a rotation of shifts handed over at ``handover`` (local time in
    ``timezone``) every ``rotation_days`` days from ``start``; a page nobody acknowledges
    within ``ack_timeout_seconds`` escalates to the secondary, then to the whole channel.

    >>> spec = OnCallSpec(timezone="Europe/Berlin", start="2026-11-23", handover="09:00",
    ...                   rotation=[Shift(primary="UA", secondary="UB"),
    ...                             Shift(primary="UB", secondary="UA")])
    >>> from datetime import datetime, UTC
    >>> spec.on_call(datetime(2026, 11, 30, 7, 59, tzinfo=UTC)).primary  # 08:59 in Berlin
    'UA'
    >>> spec.on_call(datetime(2026, 11, 30, 8, 0, tzinfo=UTC)).primary   # 09:00: handed over
    'UB'
    """

    timezone: str = "UTC"
    start: date
    handover: time = time(9, 0)
    rotation_days: int = Field(default=7, ge=1)
    rotation: list[Shift] = Field(min_length=1)
    ack_timeout_seconds: float = Field(default=900, gt=0)

    @model_validator(mode="after")
    def _zone(self) -> OnCallSpec:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

    def on_call(self, at: datetime) -> Shift:
        zone = ZoneInfo(self.timezone)
        first = datetime.combine(self.start, self.handover, tzinfo=zone)
        turns = (at.astimezone(zone) - first) // timedelta(days=self.rotation_days)
        return self.rotation[turns % len(self.rotation)]


class ModelConfig(_Frozen):
    task: Task
    reference: Path
    features: dict[str, FeatureSpec] = {}
    slices: list[str] = []
    performance: PerformanceSpec = PerformanceSpec()
    business_metrics: dict[str, BusinessMetricSpec] = {}
    positive_label: float | str | bool | None = None
    monitoring: MonitoringSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_metric(cls, data: Any) -> Any:
        """Accuracy for classification, MAE for regression, where no metric is named."""
        if isinstance(data, dict) and data.get("task") == "regression":
            perf = data.get("performance")
            if perf is None:
                return {**data, "performance": {"metric": "mae"}}
            if isinstance(perf, dict) and "metric" not in perf:
                return {**data, "performance": {**perf, "metric": "mae"}}
        return data

    @model_validator(mode="after")
    def _metric_fits_task(self) -> ModelConfig:
        m = self.performance.metric
        if self.task == "regression" and m not in REGRESSION_METRICS:
            raise ValueError(f"performance.metric {m!r} does not apply to a regression task")
        if self.task != "regression" and m not in CLASSIFICATION_METRICS:
            raise ValueError(f"performance.metric {m!r} does not apply to a classification task")
        if self.task == "multiclass_classification" and m in ("roc_auc", "f1"):
            raise ValueError(f"performance.metric {m} needs a binary task")
        return self


class Config(_Frozen):
    """The whole configuration file. ``base_dir`` resolves relative reference paths."""

    models: dict[str, ModelConfig] = Field(min_length=1)
    monitoring: MonitoringSettings = MonitoringSettings()
    limits: Limits = Limits()
    triage: TriagePolicy = TriagePolicy()
    oncall: OnCallSpec | None = None
    base_dir: Path = Path(".")

    def monitoring_for(self, model_id: str) -> MonitoringSettings:
        own = self.models[model_id].monitoring
        return own if own is not None else self.monitoring

    def reference_path(self, model_id: str) -> Path:
        ref = self.models[model_id].reference
        return ref if ref.is_absolute() else self.base_dir / ref


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = str(first["msg"]).removeprefix("Value error, ")
    more = len(err.errors()) - 1
    return f"{loc}: {msg}" + (f" (and {more} more)" if more else "")


def load_config_text(text: str, base_dir: Path = Path(".")) -> Config:
    """Parse and validate YAML text; raise :class:`ConfigError` with a one-line message."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError("(top level): expected a mapping with a 'models' key")
    if "base_dir" in raw:
        raise ConfigError("base_dir: Extra inputs are not permitted")
    try:
        return Config.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def load_config(path: Path) -> Config:
    """Read a configuration file; relative reference paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return load_config_text(text, base_dir=path.parent)
