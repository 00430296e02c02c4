"""Checkpoints are plain state (``stream.state``): complete (a restored pipeline carries on
exactly as one that never stopped), free of configuration (an edited config takes effect
on restore), and never code."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from config.file import Config, load_config
from services.pipeline import CHECKPOINT_FORMAT, Pipeline
from sim.scenarios import generate, write_scenario
from stream.state import decode, encode

MODEL = "car_loan"


def setup(tmp_path: Path, name: str = "harmful_drift") -> tuple[Config, list[bytes], Path]:
    sc = generate(name, predictions=8_000, seed=7)
    files = write_scenario(sc, tmp_path / f"{name}.jsonl")
    return load_config(files.config), files.events.read_bytes().splitlines(), files.config


def run(pipeline: Pipeline, lines: list[bytes], batch: int = 1_000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(0, len(lines), batch):
        result = pipeline.feed(lines[k:k + batch])
        out.extend(s.to_dict() for s in result.signals)
        out.extend({"evaluation": e.seq, "scope": repr(e.scope), "held": sorted(e.held),
                    "fired": sorted(e.fired)} for e in result.evaluations)
    return out


@pytest.mark.parametrize("name", ["harmful_drift", "broken_pipeline", "business_metric_drop"])
@pytest.mark.parametrize("at", [1_000, 6_000, 9_000])
def test_a_restored_pipeline_carries_on_exactly_as_one_that_never_stopped(
    tmp_path: Path, name: str, at: int,
) -> None:
    """Every monitor's state is in the checkpoint: windows, the join, CUSUMs, estimates
    and their blocks, health windows, business windows, the dedupe memory."""
    config, lines, _ = setup(tmp_path, name)
    uninterrupted = Pipeline(config, None, source="x")
    whole = run(uninterrupted, lines)
    first = Pipeline(config, None, source="x")
    before = run(first, lines[:at])
    blob = first.snapshot()
    second = Pipeline(config, None, source="x")
    assert second.restore(blob) == []  # nothing started afresh
    second.triage = first.triage  # triage's state lives in the store: hand it over
    after = run(second, lines[at:])
    assert before + after == whole
    assert second.core.counters() == uninterrupted.core.counters()


def test_the_checkpoint_is_plain_data_of_this_format(tmp_path: Path) -> None:
    config, lines, _ = setup(tmp_path)
    pipeline = Pipeline(config, None, source="x")
    run(pipeline, lines[:3_000])
    state = decode(pipeline.snapshot())
    assert state["format"] == CHECKPOINT_FORMAT
    parts = state["core"]["models"][MODEL]
    assert {p for p, v in parts.items() if v is not None} == {
        "inputs", "labels", "performance", "business", "join", "health", "estimated"}
    assert all(v["kind"] == p and v["v"] == 1 for p, v in parts.items() if v is not None)
    # nothing of the configuration or the reference is in it
    text = msgspec.json.encode(msgspec.msgpack.decode(msgspec.msgpack.encode(
        {k: v for k, v in state["core"].items() if k != "models"})))
    assert b"psi_threshold" not in text and b"reference" not in text


def test_an_edited_configuration_takes_effect_on_restore(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A threshold changed, a model added, a model removed: the unchanged monitors keep
    their state under the new thresholds, the new model starts afresh, the removed one's
    state is left behind; each said."""
    _config, lines, path = setup(tmp_path, "benign_drift")
    old = yaml.safe_load(path.read_text())
    reference = path.parent / old["models"][MODEL]["reference"]
    for other in ("retired", "newcomer"):  # the same reference, for another model id
        (tmp_path / f"{other}.jsonl").write_text(reference.read_text().replace(
            f'"model_id":"{MODEL}"', f'"model_id":"{other}"').replace(
            f'"model_id": "{MODEL}"', f'"model_id": "{other}"'))
    old["models"]["retired"] = {**copy.deepcopy(old["models"][MODEL]),
                                "reference": "retired.jsonl"}
    old["models"][MODEL]["reference"] = str(reference)
    old_path = tmp_path / "old.yaml"
    old_path.write_text(yaml.safe_dump(old))
    first = Pipeline(load_config(old_path), None, source="x")
    run(first, lines[:2_500])
    windows = first.core.models[MODEL].inputs.windows_closed
    blob = first.snapshot()

    new = copy.deepcopy(old)
    del new["models"]["retired"]
    new["models"]["newcomer"] = {**copy.deepcopy(old["models"][MODEL]),
                                 "reference": "newcomer.jsonl"}
    new.setdefault("monitoring", {})["drift"] = {"psi_threshold": 0.05}
    new_path = tmp_path / "new.yaml"
    new_path.write_text(yaml.safe_dump(new))
    second = Pipeline(load_config(new_path), None, source="x")
    notes = second.restore(blob)
    assert notes == ["newcomer: new to the configuration, starts afresh",
                     "retired: no longer configured, its state left behind"]
    inputs = second.core.models[MODEL].inputs
    assert inputs.windows_closed == windows  # the window kept its state ...
    assert inputs.settings.drift.psi_threshold == 0.05  # ... under the new threshold
    signals = [s for k in range(2_500, len(lines), 1_000)
               for s in second.feed(lines[k:k + 1_000]).signals if s.statistic == "psi"]
    assert signals and {s.threshold for s in signals} == {0.05}


def test_a_monitor_whose_state_no_longer_fits_starts_afresh(tmp_path: Path) -> None:
    config, lines, path = setup(tmp_path)
    first = Pipeline(config, None, source="x")
    run(first, lines[:3_000])
    blob = first.snapshot()
    edited = yaml.safe_load(path.read_text())
    edited.setdefault("monitoring", {})["performance"] = {"window_labels": 500}
    edited_path = tmp_path / "edited.yaml"
    edited_path.write_text(yaml.safe_dump(edited))
    second = Pipeline(load_config(edited_path), None, source="x")
    notes = second.restore(blob)
    assert len(notes) == 1 and notes[0].startswith(f"{MODEL}: performance (")
    assert "starts afresh" in notes[0]
    assert second.core.models[MODEL].inputs.windows_closed == \
        first.core.models[MODEL].inputs.windows_closed  # the others carried on
    performance = second.core.models[MODEL].performance
    assert performance is not None
    assert performance.labels == 0


def test_a_monitor_part_of_another_format_starts_that_monitor_afresh_alone(
    tmp_path: Path,
) -> None:
    """A checkpoint written by a version whose join kept another format: that monitor is
    rebuilt (and said to be); every other monitor resumes; nothing crashes."""
    config, lines, _ = setup(tmp_path)
    first = Pipeline(config, None, source="x")
    run(first, lines[:3_000])
    state = decode(first.snapshot())
    state["core"]["models"][MODEL]["join"]["v"] = 0  # as an earlier version wrote it
    state["core"]["models"][MODEL]["business"] = {"kind": "business"}  # and a damaged part
    second = Pipeline(config, None, source="x")
    notes = second.restore(encode(state))
    assert sorted(n.split(" (")[0] for n in notes) == [
        f"{MODEL}: business", f"{MODEL}: join"]
    assert all(n.endswith("starts afresh") for n in notes)
    assert "join state of format 0, not 1" in " ".join(notes)
    runtime = second.core.models[MODEL]
    assert runtime.join is not None and first.core.models[MODEL].join is not None
    assert first.core.models[MODEL].join.added > 0 and runtime.join.added == 0  # afresh
    assert runtime.inputs.windows_closed == first.core.models[MODEL].inputs.windows_closed
    assert second.core.seq == first.core.seq
    run(second, lines[3_000:])  # and it carries on
