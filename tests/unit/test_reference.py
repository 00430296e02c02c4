"""Reference profiles: type inference, null rates and ranges, reference metrics (overall and
per slice), and the configuration errors a bad reference must give."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.errors import ConfigError
from config.file import ModelConfig, load_config, load_config_text
from stream.events import Prediction
from stream.reference import (
    CategoricalProfile,
    NumericProfile,
    build_profile,
    load_profiles,
)


def model_config(body: str = "task: binary_classification") -> ModelConfig:
    return load_config_text(f"models: {{m: {{reference: r.jsonl, {body}}}}}").models["m"]


def rows_of(features: list[dict[str, Any]], **kw: Any) -> list[Prediction]:
    return [
        Prediction(ts=float(i), model_id="m", features=f, prediction=kw.get("prediction", 1.0))
        for i, f in enumerate(features)
    ]


def profile_of(features: list[dict[str, Any]], body: str = "task: binary_classification") -> Any:
    return build_profile("m", model_config(body), rows_of(features), bins=4)


def config_error(features: list[dict[str, Any]], body: str = "task: binary_classification") -> str:
    with pytest.raises(ConfigError) as info:
        profile_of(features, body)
    assert "\n" not in str(info.value)
    return str(info.value)


# --- type inference ------------------------------------------------------------------------


def test_type_inference() -> None:
    feats = [
        {
            "num": float(i),
            "cat": ["a", "b", "c"][i % 3],
            "flag": i % 4 == 0,
            "sometimes_null": None if i % 10 == 0 else float(i % 5),
        }
        for i in range(60)
    ]
    prof = profile_of(feats)
    assert list(prof.features) == ["num", "cat", "flag", "sometimes_null"]
    assert isinstance(prof.features["num"], NumericProfile)
    assert isinstance(prof.features["sometimes_null"], NumericProfile)
    cat = prof.features["cat"]
    assert isinstance(cat, CategoricalProfile) and cat.boolean is False
    assert cat.value_types == (str,)
    flag = prof.features["flag"]
    assert isinstance(flag, CategoricalProfile) and flag.boolean is True
    assert flag.value_types == (bool,)
    assert flag.categories == (False, True)
    assert flag.counts.tolist() == [45.0, 15.0]


def test_json_integers_are_numeric() -> None:
    # JSON integers decode as floats: a column of integers is numeric
    path_rows = [{"n": float(i % 7)} for i in range(60)]
    assert isinstance(profile_of(path_rows).features["n"], NumericProfile)


def test_declared_type_overrides_inference() -> None:
    feats = [{"code": float(i % 3), "flag": i % 2 == 0} for i in range(60)]
    prof = profile_of(
        feats,
        "task: binary_classification, features: {code: {type: categorical}, "
        "flag: {type: categorical}}",
    )
    code = prof.features["code"]
    assert isinstance(code, CategoricalProfile)
    assert code.categories == (0.0, 1.0, 2.0)
    assert code.value_types == (float,)
    assert prof.features["flag"].boolean is False


@pytest.mark.parametrize(
    ("values", "types"),
    [
        ([1.0, "a"], "float, str"),
        ([True, 2.0], "bool, float"),
        (["x", False], "bool, str"),
    ],
)
def test_mixed_types_name_the_feature(values: list[Any], types: str) -> None:
    feats = [{"ok": 1.0, "mixed": values[i % 2]} for i in range(60)]
    assert config_error(feats) == (
        f"reference: feature 'mixed' mixes types ({types}); declare its type"
    )


def test_always_null_feature_needs_a_declared_type() -> None:
    feats = [{"x": 1.0, "empty": None} for _ in range(60)]
    assert config_error(feats) == "reference: feature 'empty' is always null; declare its type"
    prof = profile_of(feats, "task: binary_classification, features: {empty: {type: categorical}}")
    assert prof.features["empty"].null_rate == 1.0


def test_declared_feature_absent_from_reference() -> None:
    feats = [{"x": 1.0} for _ in range(60)]
    assert (
        config_error(feats, "task: binary_classification, features: {ghost: {type: numeric}}")
        == "models.m.features.ghost: not in the reference"
    )


def test_declared_numeric_without_numbers() -> None:
    feats = [{"x": "a"} for _ in range(60)]
    assert (
        config_error(feats, "task: binary_classification, features: {x: {type: numeric}}")
        == "reference: 'x' has no numeric values"
    )


def test_too_many_categories() -> None:
    feats = [{"id": f"user-{i}"} for i in range(1001)]
    assert config_error(feats) == (
        "reference: 'id' has 1001 distinct values (more than 1000); "
        "declare it numeric or leave it out"
    )


@pytest.mark.parametrize("n", [0, 1, 49])
def test_too_few_rows(n: int) -> None:
    feats = [{"x": float(i)} for i in range(n)]
    assert config_error(feats) == (f"models.m.reference: {n} predictions; at least 50 are needed")


def test_fifty_rows_are_enough() -> None:
    assert profile_of([{"x": float(i)} for i in range(50)]).features["x"].n == 50


# --- null rate, range, histogram -----------------------------------------------------------


def test_numeric_null_rate_range_and_histogram() -> None:
    # 100 rows: x = 0..79 present, 10 null, 5 absent, 5 of the wrong type
    feats: list[dict[str, Any]] = [{"x": float(i), "k": "a"} for i in range(80)]
    feats += [{"x": None, "k": "a"} for _ in range(10)]
    feats += [{"k": "a"} for _ in range(5)]
    feats += [{"x": "bad", "k": "a"} for _ in range(5)]
    prof = profile_of(feats, "task: binary_classification, features: {x: {type: numeric}}")
    x = prof.features["x"]
    assert isinstance(x, NumericProfile)
    assert x.n == 100
    assert x.null_rate == 0.2  # nulls, absent and mistyped values alike
    assert (x.min, x.max) == (0.0, 79.0)
    assert x.mean == 39.5
    assert x.std == pytest.approx(np.std(np.arange(80.0)))
    assert x.edges.tolist() == [19.75, 39.5, 59.25]  # quantile bins (bins=4)
    assert x.counts.tolist() == [20.0, 20.0, 20.0, 20.0]
    assert (x.bound_min, x.bound_max, x.out_of_bounds_rate) == (None, None, 0.0)


def test_categorical_null_rate_and_shares() -> None:
    values = ["b"] * 30 + ["a"] * 30 + ["c"] * 25 + [None] * 15
    prof = profile_of([{"k": v} for v in values])
    k = prof.features["k"]
    assert isinstance(k, CategoricalProfile)
    assert k.n == 100
    assert k.null_rate == 0.15
    assert k.categories == ("a", "b", "c")  # by count, ties by name
    assert k.counts.tolist() == [30.0, 30.0, 25.0]
    assert dict(k.index) == {"a": 0, "b": 1, "c": 2}


def test_hard_bounds_and_reference_violations() -> None:
    feats = [{"x": float(i) - 5.0} for i in range(100)]  # -5 .. 94
    prof = profile_of(
        feats, "task: binary_classification, features: {x: {type: numeric, min: 0, max: 90}}"
    )
    x = prof.features["x"]
    assert (x.bound_min, x.bound_max) == (0.0, 90.0)
    assert x.out_of_bounds_rate == 0.09  # -5..-1 and 91..94
    assert x.out_of_bounds(np.array([-1.0, 0.0, 90.0, 90.5])) == 2
    assert x.out_of_range(np.array([-6.0, -5.0, 94.0, 95.0])) == 2


def test_prediction_score_and_label_profiles() -> None:
    rows = [
        Prediction(
            ts=float(i),
            model_id="m",
            features={"x": 1.0},
            prediction=float(i % 2),
            score=(i % 10) / 10,
            label=float(i % 3 == 0) if i < 60 else None,
        )
        for i in range(100)
    ]
    prof = build_profile("m", model_config(), rows, bins=4)
    assert isinstance(prof.prediction, CategoricalProfile)
    assert prof.prediction.categories == (0.0, 1.0)
    assert prof.score is not None and (prof.score.min, prof.score.max) == (0.0, 0.9)
    assert isinstance(prof.label, CategoricalProfile)
    assert prof.label.n == 60
    assert prof.label.categories == (0.0, 1.0) and prof.label.counts.tolist() == [40.0, 20.0]
    assert prof.classes is not None and prof.classes.classes == [0.0, 1.0]
    assert prof.positive == 1.0
    assert prof.is_classification


def test_no_scores_and_no_labels() -> None:
    prof = profile_of([{"x": float(i)} for i in range(60)])
    assert prof.score is None
    assert prof.label is None
    assert prof.metric is None
    assert prof.slice_metrics == {}


# --- reference metrics ---------------------------------------------------------------------


def labelled_rows() -> list[Prediction]:
    """100 labelled rows, hand-made: 13 wrong predictions (rows 0, 8, 16, ..., 96), and 20
    rows without a label that must not count."""
    rows = []
    for i in range(100):
        label = float(i % 2)
        wrong = i % 8 == 0
        rows.append(
            Prediction(
                ts=float(i),
                model_id="m",
                features={"color": ["red", "blue"][i % 2], "size": float(i)},
                prediction=1.0 - label if wrong else label,
                label=label,
                tags={"channel": "web" if i < 70 else "app"},
            )
        )
    for i in range(20):
        rows.append(
            Prediction(
                ts=100.0 + i, model_id="m", features={"color": "red", "size": 1.0}, prediction=1.0
            )
        )
    return rows


def test_reference_accuracy_by_hand() -> None:
    prof = build_profile("m", model_config(), labelled_rows(), bins=4)
    assert prof.metric is not None
    assert prof.metric.value == 0.87
    assert prof.metric.n == 100
    assert prof.metric.stderr == pytest.approx(math.sqrt(0.87 * 0.13 / 100))


def test_slice_reference_metrics() -> None:
    cfg = model_config("task: binary_classification, slices: [color, channel, size]")
    prof = build_profile("m", cfg, labelled_rows(), bins=4, min_reference_rows=25)
    # the wrong rows (i % 8 == 0) all have an even i: color red, label 0
    got = {k: (round(v.value, 6), v.n) for k, v in prof.slice_metrics.items()}
    # size quartiles over all 120 rows (the 20 unlabelled ones at size 1.0 count too):
    # edges 9.75, 39.5, 69.25; q1 (sizes 0..9) has 10 labelled rows, fewer than 25
    assert got == {
        "color=red": (round(37 / 50, 6), 50),
        "color=blue": (1.0, 50),
        "channel=web": (round(61 / 70, 6), 70),
        "channel=app": (round(26 / 30, 6), 30),
        "size=q2": (0.9, 30),
        "size=q3": (round(26 / 30, 6), 30),
        "size=q4": (round(26 / 30, 6), 30),
    }
    assert [(d.name, d.source) for d in prof.slices] == [
        ("color", "feature"),
        ("channel", "tag"),
        ("size", "feature"),
    ]
    size = prof.slices[2]
    assert size.edges is not None and size.edges.tolist() == [9.75, 39.5, 69.25]
    assert size.label(0.0) == "size=q1" and size.label(99.0) == "size=q4"
    assert size.label(9.75) == "size=q2"
    assert size.label("x") is None and size.label(None) is None
    assert prof.slices[0].label("red") == "color=red"


def test_small_slices_get_no_reference_metric() -> None:
    cfg = model_config("task: binary_classification, slices: [channel]")
    prof = build_profile("m", cfg, labelled_rows(), bins=4, min_reference_rows=31)
    assert set(prof.slice_metrics) == {"channel=web"}  # app has 30 labelled rows


def test_reference_mae_by_hand() -> None:
    rows = [
        Prediction(
            ts=float(i),
            model_id="m",
            features={"x": float(i)},
            prediction=float(i),
            label=float(i) + (2.0 if i % 2 else -1.0),
        )
        for i in range(60)
    ]
    prof = build_profile("m", model_config("task: regression"), rows, bins=4)
    assert isinstance(prof.prediction, NumericProfile)
    assert prof.classes is None
    assert prof.metric is not None and prof.metric.value == 1.5 and prof.metric.n == 60
    assert not prof.is_classification


def test_string_classes_and_positive_label() -> None:
    rows = [
        Prediction(
            ts=float(i),
            model_id="m",
            features={"x": float(i)},
            prediction="yes" if i % 3 else "no",
            label="yes" if i % 2 else "no",
        )
        for i in range(60)
    ]
    prof = build_profile("m", model_config(), rows, bins=4)
    assert prof.classes is not None and prof.classes.classes == ["no", "yes"]
    assert prof.positive == 1.0  # "yes": the last class by name
    assert prof.metric is not None and prof.metric.value == 0.5
    cfg = model_config("task: binary_classification, positive_label: 'no'")
    assert build_profile("m", cfg, rows, bins=4).positive == 0.0


# --- reading reference files ---------------------------------------------------------------


def reference_line(i: int, **over: Any) -> bytes:
    ev: dict[str, Any] = {
        "type": "prediction",
        "ts": 1551441600 + i,
        "model_id": "m",
        "features": {"x": float(i % 10), "k": "ab"[i % 2]},
        "prediction": i % 2,
        "label": (i // 2) % 2,
    }
    ev.update(over)
    return json.dumps(ev).encode()


def write_setup(tmp_path: Path, lines: list[bytes], extra: str = "") -> Path:
    sub = tmp_path / "cfg"
    sub.mkdir(exist_ok=True)
    (sub / "ref.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    path = sub / "config.yaml"
    path.write_text(
        "models:\n  m:\n    task: binary_classification\n    reference: ref.jsonl\n" + extra,
        encoding="utf-8",
    )
    return path


def test_load_profiles_reads_the_reference_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_setup(
        tmp_path, [reference_line(i) for i in range(100)], "monitoring: {drift: {bins: 5}}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    profiles = load_profiles(load_config(path))
    prof = profiles["m"]
    assert prof.model_id == "m"
    x = prof.features["x"]
    assert isinstance(x, NumericProfile) and x.n == 100
    assert len(x.edges) <= 4  # bins from the monitoring settings
    assert prof.metric is not None and prof.metric.value == 0.5 and prof.metric.n == 100


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    lines = [reference_line(i) for i in range(60)]
    lines[10:10] = [b"", b"   "]
    profiles = load_profiles(load_config(write_setup(tmp_path, lines)))
    assert profiles["m"].features["x"].n == 60


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"type": "prediction",', "invalid_json: Input data was truncated"),
        (
            reference_line(2, model_id="other"),
            "unknown_model: unknown model 'other'",
        ),
        (
            json.dumps({"type": "prediction", "ts": 1, "model_id": "m"}).encode(),
            "missing_field: Object missing required field `features`",
        ),
        (
            reference_line(2, features=[1]),
            "wrong_type: Expected `object`, got `array` - at `$.features`",
        ),
    ],
)
def test_bad_line_names_the_line(tmp_path: Path, bad: bytes, message: str) -> None:
    lines = [reference_line(i) for i in range(60)]
    lines[2] = bad  # line 4 of the file: a blank line comes first
    path = write_setup(tmp_path, [b"", *lines])
    with pytest.raises(ConfigError) as info:
        load_profiles(load_config(path))
    assert str(info.value) == f"models.m.reference: ref.jsonl line 4: {message}"


def test_outcome_in_reference(tmp_path: Path) -> None:
    lines = [reference_line(i) for i in range(60)]
    lines[6] = json.dumps(
        {"type": "outcome", "ts": 1, "model_id": "m", "request_id": "r", "label": 1}
    ).encode()
    with pytest.raises(ConfigError) as info:
        load_profiles(load_config(write_setup(tmp_path, lines)))
    assert str(info.value) == (
        "models.m.reference: ref.jsonl line 7: only prediction events belong in a reference"
    )


def test_invalid_utf8_in_reference(tmp_path: Path) -> None:
    lines = [reference_line(i) for i in range(60)]
    lines[4] = lines[4].replace(b'"k": "a"', b'"k": "\xff"')
    with pytest.raises(
        ConfigError, match=r"^models\.m\.reference: ref\.jsonl line 5: invalid_utf8"
    ):
        load_profiles(load_config(write_setup(tmp_path, lines)))


def test_missing_reference_file(tmp_path: Path) -> None:
    path = write_setup(tmp_path, [reference_line(i) for i in range(60)])
    (path.parent / "ref.jsonl").unlink()
    with pytest.raises(ConfigError) as info:
        load_profiles(load_config(path))
    assert str(info.value) == (
        f"models.m.reference: cannot read {path.parent / 'ref.jsonl'}: No such file or directory"
    )


def test_too_few_rows_in_file(tmp_path: Path) -> None:
    path = write_setup(tmp_path, [reference_line(i) for i in range(10)])
    with pytest.raises(ConfigError, match=r"^models\.m\.reference: 10 predictions; at least 50"):
        load_profiles(load_config(path))
