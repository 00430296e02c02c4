"""Configuration (CONTRACT §2): the example loads, defaults, one-line errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.errors import ConfigError, PermanentError
from config.file import Config, load_config, load_config_text

CONTRACT_EXAMPLE = """\
models:
  car_loan:
    task: binary_classification     # binary_classification | multiclass_classification | regression
    reference: car_loan_reference.jsonl   # path relative to this file: prediction events with "label"
    features:                       # optional: inferred from the reference where omitted
      car_value: {type: numeric, min: 0}
      salary_range: {type: categorical}
    slices: [salary_range]          # optional: feature or tag names
    performance:
      metric: accuracy              # at least: accuracy, roc_auc, f1, mae, rmse
      max_drop: 0.02                # drop from the reference value that is actionable
"""  # noqa: E501  (verbatim from CONTRACT §2)


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_contract_example_loads() -> None:
    cfg = load_config_text(CONTRACT_EXAMPLE)
    assert isinstance(cfg, Config)
    assert list(cfg.models) == ["car_loan"]
    model = cfg.models["car_loan"]
    assert model.task == "binary_classification"
    assert model.reference == Path("car_loan_reference.jsonl")
    assert set(model.features) == {"car_value", "salary_range"}
    car = model.features["car_value"]
    assert (car.type, car.min, car.max) == ("numeric", 0.0, None)
    sal = model.features["salary_range"]
    assert (sal.type, sal.min, sal.max) == ("categorical", None, None)
    assert model.slices == ["salary_range"]
    assert (model.performance.metric, model.performance.max_drop) == ("accuracy", 0.02)
    assert model.business_metrics == {}
    assert model.positive_label is None
    assert model.monitoring is None


def test_classification_defaults() -> None:
    cfg = load_config_text("models: {m: {task: binary_classification, reference: r.jsonl}}")
    model = cfg.models["m"]
    assert (model.performance.metric, model.performance.max_drop) == ("accuracy", 0.02)
    assert model.features == {} and model.slices == []
    mon = cfg.monitoring
    assert (mon.window_events, mon.window_seconds, mon.min_window_events) == (1000, None, 200)
    assert mon.alpha == 1e-4
    assert (mon.drift.psi_threshold, mon.drift.bins) == (0.2, 10)
    assert mon.quality.null_rate_increase == 0.05
    assert mon.quality.schema_rate == 0.01
    perf = mon.performance
    assert (perf.window_labels, perf.min_labels, perf.eval_every) == (1000, 200, 100)
    assert (perf.join_ttl_seconds, perf.join_wait_seconds) == (90 * 24 * 3600, 3600)
    assert perf.join_max_pending == 500_000
    assert cfg.limits.max_event_bytes == 64 * 1024
    assert cfg.limits.max_message_bytes == 8 * 1024 * 1024
    assert cfg.limits.dedupe_capacity == 1_000_000
    assert cfg.monitoring_for("m") is cfg.monitoring


@pytest.mark.parametrize(
    ("performance", "metric", "max_drop"),
    [
        ("", "mae", 0.02),
        ("performance: {max_drop: 0.5}", "mae", 0.5),
        ("performance: {metric: rmse}", "rmse", 0.02),
        ("performance: null", "mae", 0.02),
    ],
)
def test_regression_defaults_to_mae(performance: str, metric: str, max_drop: float) -> None:
    extra = f", {performance}" if performance else ""
    cfg = load_config_text(f"models: {{m: {{task: regression, reference: r.jsonl{extra}}}}}")
    assert cfg.models["m"].performance.metric == metric
    assert cfg.models["m"].performance.max_drop == max_drop


@pytest.mark.parametrize(
    ("task", "metric"),
    [
        ("binary_classification", "accuracy"),
        ("binary_classification", "roc_auc"),
        ("binary_classification", "f1"),
        ("multiclass_classification", "accuracy"),
        ("regression", "mae"),
        ("regression", "rmse"),
    ],
)
def test_metrics_that_fit_the_task(task: str, metric: str) -> None:
    cfg = load_config_text(
        f"models: {{m: {{task: {task}, reference: r.jsonl, performance: {{metric: {metric}}}}}}}"
    )
    assert cfg.models["m"].performance.metric == metric


def test_per_model_monitoring_overrides_the_global_one() -> None:
    cfg = load_config_text(
        "models:\n"
        "  a: {task: regression, reference: a.jsonl, monitoring: {window_events: 300}}\n"
        "  b: {task: regression, reference: b.jsonl}\n"
        "monitoring: {window_events: 500, min_window_events: 100}\n"
    )
    assert cfg.monitoring_for("a").window_events == 300
    assert cfg.monitoring_for("a").min_window_events == 200  # not merged with the global one
    assert cfg.monitoring_for("b").window_events == 500


def test_business_metrics_and_positive_label() -> None:
    cfg = load_config_text(
        "models: {m: {task: binary_classification, reference: r.jsonl, positive_label: yes_,"
        " business_metrics: {subscribed: {max_drop: 0.1}, cost: {direction: lower_is_better}}}}"
    )
    model = cfg.models["m"]
    assert model.positive_label == "yes_"
    assert model.business_metrics["subscribed"].max_drop == 0.1
    assert model.business_metrics["subscribed"].direction == "higher_is_better"
    assert model.business_metrics["cost"].direction == "lower_is_better"
    assert model.business_metrics["cost"].max_drop == 0.1


def test_config_is_frozen() -> None:
    cfg = load_config_text(CONTRACT_EXAMPLE)
    with pytest.raises(ValueError, match="frozen"):
        cfg.models["car_loan"].task = "regression"


# --- one-line errors naming the key --------------------------------------------------------

BASE = "models: {m: {task: regression, reference: r.jsonl"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + ", wat: 1}}", "models.m.wat: Extra inputs are not permitted"),
        (BASE + "}}\nfoo: 1", "foo: Extra inputs are not permitted"),
        (
            BASE + "}}\nmonitoring: {window: 5}",
            "monitoring.window: Extra inputs are not permitted",
        ),
        (
            BASE + ", performance: {metric: mae, maxdrop: 0.1}}}",
            "models.m.performance.maxdrop: Extra inputs are not permitted",
        ),
        (
            BASE + ", features: {x: {type: numeric, minimum: 0}}}}",
            "models.m.features.x.minimum: Extra inputs are not permitted",
        ),
        (BASE + "}}\nbase_dir: /tmp", "base_dir: Extra inputs are not permitted"),
    ],
)
def test_unknown_key(text: str, message: str) -> None:
    assert config_error(text) == message


def test_wrong_task() -> None:
    assert config_error("models: {m: {task: clustering, reference: r.jsonl}}") == (
        "models.m.task: Input should be 'binary_classification', "
        "'multiclass_classification' or 'regression'"
    )


@pytest.mark.parametrize(
    ("task", "metric", "message"),
    [
        (
            "regression",
            "accuracy",
            "models.m: performance.metric 'accuracy' does not apply to a regression task",
        ),
        (
            "regression",
            "roc_auc",
            "models.m: performance.metric 'roc_auc' does not apply to a regression task",
        ),
        (
            "binary_classification",
            "mae",
            "models.m: performance.metric 'mae' does not apply to a classification task",
        ),
        (
            "multiclass_classification",
            "rmse",
            "models.m: performance.metric 'rmse' does not apply to a classification task",
        ),
        (
            "multiclass_classification",
            "roc_auc",
            "models.m: performance.metric roc_auc needs a binary task",
        ),
        ("multiclass_classification", "f1", "models.m: performance.metric f1 needs a binary task"),
    ],
)
def test_metric_that_does_not_fit_the_task(task: str, metric: str, message: str) -> None:
    text = f"models: {{m: {{task: {task}, reference: r.jsonl, performance: {{metric: {metric}}}}}}}"
    assert config_error(text) == message


def test_unknown_metric() -> None:
    assert config_error(BASE + ", performance: {metric: r2}}}") == (
        "models.m.performance.metric: Input should be 'accuracy', 'roc_auc', 'f1', 'mae' or 'rmse'"
    )


def test_min_greater_than_max() -> None:
    assert (
        config_error(BASE + ", features: {x: {type: numeric, min: 5, max: 1}}}}")
        == "models.m.features.x: min (5.0) is greater than max (1.0)"
    )


def test_min_equal_to_max_is_allowed() -> None:
    cfg = load_config_text(BASE + ", features: {x: {type: numeric, min: 1, max: 1}}}}")
    assert cfg.models["m"].features["x"].min == cfg.models["m"].features["x"].max == 1.0


@pytest.mark.parametrize("ftype", ["categorical", "boolean"])
@pytest.mark.parametrize("bound", ["min: 0", "max: 3"])
def test_bounds_on_a_non_numeric_feature(ftype: str, bound: str) -> None:
    assert (
        config_error(BASE + f", features: {{x: {{type: {ftype}, {bound}}}}}}}}}")
        == "models.m.features.x: min/max apply to numeric features only"
    )


def test_more_than_one_error_is_counted_on_the_one_line() -> None:
    text = (
        BASE + ", features: {x: {type: numeric, min: 5, max: 1}, y: {type: categorical, max: 1}}}}"
    )
    assert (
        config_error(text)
        == "models.m.features.x: min (5.0) is greater than max (1.0) (and 1 more)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: {m: {reference: r.jsonl}}", "models.m.task: Field required"),
        ("models: {m: {task: regression}}", "models.m.reference: Field required"),
        ("monitoring: {}", "models: Field required"),
        ("models: {}", "models: Dictionary should have at least 1 item after validation, not 0"),
        ("models: [a]", "models: Input should be a valid dictionary"),
        (
            BASE + ", features: {x: {type: text}}}}",
            "models.m.features.x.type: Input should be 'numeric', 'categorical' or 'boolean'",
        ),
        (
            BASE + ", performance: {max_drop: -1}}}",
            "models.m.performance.max_drop: Input should be greater than or equal to 0",
        ),
        (
            BASE + "}}\nmonitoring: {window_events: 100, min_window_events: 200}",
            "monitoring: min_window_events must not exceed window_events",
        ),
        (
            BASE + "}}\nmonitoring: {performance: {window_labels: 100, min_labels: 200}}",
            "monitoring.performance: min_labels must not exceed window_labels",
        ),
        (
            BASE + "}}\nlimits: {max_event_bytes: 10}",
            "limits.max_event_bytes: Input should be greater than or equal to 256",
        ),
        (
            BASE + "}}\ntriage: {silences: [{ends_at: '2030-01-01T00:00:00Z', kind: drfit}]}",
            "triage.silences.0.kind: Input should be 'schema', 'data_quality', 'drift', "
            "'prediction_drift', 'label_drift', 'performance', 'business_metric', 'canary', "
            "'fallback' or 'monitoring_health'",
        ),
    ],
)
def test_other_invalid_values_name_the_key(text: str, message: str) -> None:
    assert config_error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models: {m: [",
            "not valid YAML at line 1: expected the node content, but found '<stream end>'",
        ),
        ("a: b: c", "not valid YAML at line 1: mapping values are not allowed here"),
        (
            "models:\n\t- x",
            "not valid YAML at line 2: found character '\\t' that cannot start any token",
        ),
        ("a: &x 1\nb: *y", "not valid YAML at line 2: found undefined alias 'y'"),
    ],
)
def test_invalid_yaml(text: str, message: str) -> None:
    assert config_error(text) == message


def test_unsafe_yaml_tags_are_refused() -> None:
    message = config_error("models: !!python/object/apply:os.system ['true']")
    assert message.startswith("not valid YAML at line 1: could not determine a constructor")


@pytest.mark.parametrize("text", ["- a\n- b", "hello", "42", "", "# only a comment\n"])
def test_non_mapping_top_level(text: str) -> None:
    assert config_error(text) == "(top level): expected a mapping with a 'models' key"


def test_config_error_is_permanent() -> None:
    assert issubclass(ConfigError, PermanentError)


# --- files ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot read {path}: ")
    assert "No such file or directory" in message


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"models: {m: {task: regression, reference: \xff}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"cannot read {path}: ")
    assert "\n" not in str(info.value)


def test_error_in_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + ", wat: 1}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^models\.m\.wat: Extra inputs are not permitted$"):
        load_config(path)


def test_reference_resolves_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "c.yaml"
    path.write_text(
        "models:\n"
        "  a: {task: regression, reference: refs/a.jsonl}\n"
        f"  b: {{task: regression, reference: {json.dumps(str(tmp_path / 'abs.jsonl'))}}}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path)
    assert cfg.base_dir == folder
    assert cfg.reference_path("a") == folder / "refs" / "a.jsonl"
    assert cfg.reference_path("b") == tmp_path / "abs.jsonl"
    # load_config_text without a base_dir: relative to the current folder
    text_cfg = load_config_text(path.read_text(encoding="utf-8"))
    assert text_cfg.reference_path("a") == Path("refs/a.jsonl")


@pytest.mark.parametrize(
    ("old", "new"),
    [("resolve_after_seconds", "resolve_after_evaluations"),
     ("group_window_seconds", "flap_window_evaluations"),
     ("flap_window_seconds", "flap_window_evaluations")],
)
def test_settings_that_counted_seconds_are_refused_with_their_replacement(old: str,
                                                                          new: str) -> None:
    text = f"models: {{m: {{task: regression, reference: r.jsonl}}}}\ntriage: {{{old}: 60}}"
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert str(info.value) == (
        f"triage: {old} is replaced by {new}: triage counts evaluations of the monitor, not "
        "seconds of event time, so pages do not depend on the traffic rate")
