"""Each seeded scenario replayed once per session through the whole pipeline (core and
triage, no store), shared by the signal tests and the triage tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.triage import Triage
from config.file import load_config
from services.pipeline import Pipeline, Totals
from services.replay import replay
from sim.scenarios import SCENARIOS, generate, write_scenario
from stream.signals import Signal

Group = tuple[str, str, str]  # kind, subject, statistic


@dataclass
class Run:
    onset: int | None
    events: int
    signals: list[Signal]
    expected: list[tuple[str, str, str | None]]
    totals: Totals
    triage: Triage

    def first(self) -> dict[Group, int]:
        out: dict[Group, int] = {}
        for s in self.signals:
            out.setdefault((str(s.kind), s.subject, s.statistic), s.seq)
        return out


def run_scenario(tmp: Path, name: str, predictions: int) -> Run:
    scenario = generate(name, predictions=predictions, seed=7)
    files = write_scenario(scenario, tmp / f"{name}.jsonl")
    signals: list[Signal] = []
    pipeline = Pipeline(load_config(files.config), None, source=name,
                        on_signal=signals.append)
    report = replay(files.events, pipeline.core, process=pipeline.feed)
    assert report.rejected == {}
    assert report.accepted == len(scenario.events)
    onset = scenario.incidents[0].onset_index if scenario.incidents else None
    expected = [(e.kind, e.subject, e.slice) for i in scenario.incidents for e in i.expect]
    return Run(onset, len(scenario.events), signals, expected, pipeline.totals,
               pipeline.triage)


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    tmp = tmp_path_factory.mktemp("scenarios")
    return {name: run_scenario(tmp, name, 40_000) for name in SCENARIOS}
