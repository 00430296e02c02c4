"""Samples: every evaluation reports the value of each series it tested (fired, held or
clear); triage thins them (one in ``sample_every`` evaluations of a series, and every one
at which it fired or changed state) and the store keeps one snapshot per series and index.

The streams are test_monitors' hand-built ones (its reference, config and helpers).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from alerts.fingerprint import series_fingerprint
from alerts.store.sql import SqlStore
from alerts.triage import Triage
from config.file import TriagePolicy
from sim.scenarios import generate, write_scenario
from stream.core import Core
from stream.monitors.inputs import INPUT_SCOPE
from stream.signals import Evaluation, Kind, Sample, Scope, Signal
from tests.unit.test_monitors import (
    labelled_stream,
    make_core,
    metric_line,
    mixed_stream,
    prediction_stream,
)
from watchkeeper.cli import main


def evaluations(core: Core, lines: list[bytes], batch: int = 300) -> tuple[
        list[Evaluation], list[Signal]]:
    evals: list[Evaluation] = []
    signals: list[Signal] = []
    for k in range(0, len(lines), batch):
        result = core.process(lines[k:k + batch])
        evals.extend(result.evaluations)
        signals.extend(result.signals)
    return evals, signals


def test_a_window_samples_every_series_it_tests_clear_held_or_fired() -> None:
    """Null rates per 200-prediction window: 0, 50 % (fires), 4.5 % (held), 2 %, 0 (clear):
    each window has the value of each of its series, the signal's where one fired."""
    share = {1: 2, 2: 22, 3: 50}

    def nulls(i: int, f: dict[str, object]) -> None:
        n = share.get(i // 200)
        if n is not None and i % n == 0:
            f["amount"] = None

    lines, seqs = prediction_stream(1000, nulls)
    evals, signals = evaluations(make_core(), lines)
    inputs = [e for e in evals if e.scope == INPUT_SCOPE]
    null_rate = [(e.seq, s.value, s.threshold) for e in inputs for s in e.samples
                 if s.key == (Kind.DATA_QUALITY, "amount", "null_rate")]
    assert null_rate == [(seqs[199], 0.0, 0.05), (seqs[399], 0.5, 0.05),
                         (seqs[599], 0.045, 0.05), (seqs[799], 0.02, 0.05),
                         (seqs[999], 0.0, 0.05)]
    ((signal,),) = [[s for s in signals if s.statistic == "null_rate"]]
    assert (signal.seq, signal.value, signal.threshold) == null_rate[1]
    # every series of every column, clear ones too (the reference: amount numeric with a
    # lower bound; color and active categorical; the prediction)
    first = inputs[0]
    assert first.fired == first.held == frozenset()
    assert [(str(s.kind), s.subject, s.statistic, s.value, s.threshold)
            for s in first.samples] == [
        ("schema", "amount", "missing_rate", 0.0, 0.01),
        ("schema", "amount", "type_mismatch_rate", 0.0, 0.01),
        ("data_quality", "amount", "null_rate", 0.0, 0.05),
        ("data_quality", "amount", "out_of_bounds_rate", 0.0, 0.01),
        ("data_quality", "amount", "out_of_range_rate", 0.0, 0.051998),
        ("drift", "amount", "psi", 0.0, 0.2),
        ("schema", "color", "missing_rate", 0.0, 0.01),
        ("schema", "color", "type_mismatch_rate", 0.0, 0.01),
        ("data_quality", "color", "null_rate", 0.0, 0.05),
        ("data_quality", "color", "unseen_category_rate", 0.0, 0.05),
        ("drift", "color", "psi", 0.0, 0.2),
        ("schema", "active", "missing_rate", 0.0, 0.01),
        ("schema", "active", "type_mismatch_rate", 0.0, 0.01),
        ("data_quality", "active", "null_rate", 0.0, 0.05),
        ("data_quality", "active", "unseen_category_rate", 0.0, 0.05),
        ("drift", "active", "psi", 4e-06, 0.2),
        ("prediction_drift", "prediction", "psi", 0.0, 0.2),
    ]
    assert all(len(e.samples) == len(first.samples) for e in inputs)


def test_performance_samples_the_metric_against_its_tolerance_line() -> None:
    """Every 50 labels: the accuracy over the labels a signal would report (0.9 while the
    model is right), then the signals' values once it is wrong."""
    evals, signals = evaluations(make_core(), labelled_stream(600, wrong_from=300))
    perf = [(e.seq, s.value, s.threshold, s.slice, s.model_version, bool(e.fired))
            for e in evals if Kind.PERFORMANCE in e.scope.kinds for s in e.samples]
    line = 0.840513
    assert perf == [
        *((seq, 0.9, line, None, None, False) for seq in (104, 204, 304, 404, 504, 604)),
        (704, 0.5, line, None, None, True), (804, 0.1, line, None, None, True),
        (904, 0.09396, line, None, None, True), (1004, 0.095477, line, None, None, True),
        (1104, 0.1, line, None, None, True)]
    assert [(s.seq, s.value, s.threshold) for s in signals] == [
        (seq, value, line) for seq, value, *_ in perf[6:]]


def test_business_metric_samples_its_window_mean() -> None:
    lines = [metric_line(1e6 + i, float(i % 2)) for i in range(300)]
    lines += [metric_line(1e6 + 300 + i, 1.0 if i % 10 == 0 else 0.0) for i in range(300)]
    evals, signals = evaluations(make_core(), lines)
    got = [(e.seq, s.value, s.threshold) for e in evals for s in e.samples
           if s.kind is Kind.BUSINESS_METRIC]
    assert got[:5] == [(199, 0.5, 0.4), (249, 0.5, 0.4), (299, 0.5, 0.4), (349, 0.3, 0.4),
                       (399, 0.1, 0.4)]
    assert [(s.seq, s.value, s.threshold) for s in signals] == got[4:]


def test_samples_match_the_signals_and_do_not_depend_on_batch_size() -> None:
    """The mixed stream (quality, schema, performance per slice, business, health): the
    same samples at any batch cut, and a signal's value is its series' sample there."""
    lines = mixed_stream()
    extra = "    slices: [color, channel, amount]\n"
    found = {}
    for batch in (1, 7, 500):
        evals, signals = evaluations(make_core(window_seconds=150, model_extra=extra), lines,
                                     batch)
        found[batch] = sorted(((e.seq, e.model_id, s) for e in evals for s in e.samples),
                              key=lambda r: (r[0], *map(str, r[2].key), str(r[2].slice),
                                             str(r[2].model_version)))
    assert found[1] == found[7] == found[500]
    at = {(seq, s.kind, s.subject, s.statistic, s.slice, s.model_version): (s.value, s.threshold)
          for seq, _, s in found[500]}
    assert len(at) == len(found[500])  # one per series and index
    assert signals and all(
        at[(s.seq, s.kind, s.subject, s.statistic, s.slice, s.model_version)] == (
            s.value, s.threshold) for s in signals)
    kinds = {str(s.kind) for _, _, s in found[500]}
    assert kinds >= {"data_quality", "schema", "drift", "performance", "business_metric",
                     "monitoring_health"}
    assert {s.slice for _, _, s in found[500] if s.kind is Kind.PERFORMANCE} >= {
        None, "color=red", "channel=web"}


def _evaluation(seq: int, state: str) -> Evaluation:
    key = (Kind.DRIFT, "car_value", "psi")
    return Evaluation("m", Scope(frozenset({Kind.DRIFT})), seq, float(seq),
                      held=frozenset({key}) if state == "held" else frozenset(),
                      fired=frozenset({key}) if state == "fired" else frozenset(),
                      samples=(Sample(*key, None, None, float(seq), 0.2),))


def test_triage_keeps_one_sample_in_every_few_and_each_turn() -> None:
    """sample_every 3: the first; then every third in a state; a held one, each fired one,
    the first clear one after; under the series' fingerprint (its alerts')."""
    states = ["clear"] * 7 + ["held", "held", "fired", "fired", "clear", "clear", "clear",
                              "clear"]
    triage = Triage(TriagePolicy(sample_every=3))
    changes = triage.process([], [_evaluation(seq, state) for seq, state in enumerate(states)])
    assert [m.seq for m in changes.samples] == [0, 3, 6, 7, 9, 10, 11, 14]
    fp = series_fingerprint("m", Kind.DRIFT, "car_value", "psi", None, None)
    assert {m.fingerprint for m in changes.samples} == {fp}
    assert [m.sample.value for m in changes.samples] == [0.0, 3.0, 6.0, 7.0, 9.0, 10.0, 11.0,
                                                         14.0]
    # and every one with sample_every 1
    everything = Triage(TriagePolicy(sample_every=1)).process(
        [], [_evaluation(seq, state) for seq, state in enumerate(states)])
    assert [m.seq for m in everything.samples] == list(range(len(states)))


def test_the_store_keeps_one_snapshot_per_series_and_index(tmp_path: Path) -> None:
    """A replay writes the samples beside the signals' snapshots (a signal's value is its
    sample's: one row); replaying it again adds nothing."""
    files = write_scenario(generate("harmful_drift", predictions=5_000, seed=7),
                           tmp_path / "harmful_drift.jsonl")
    db = str(tmp_path / "wk.db")
    replay = ["replay", str(files.events), "--config", str(files.config), "--db", db, "-q"]
    assert main(replay) == 0
    store = SqlStore(db, migrate=False)
    try:
        with store.engine.connect() as conn:
            def counts() -> tuple[int, ...]:
                return tuple(conn.execute(text(
                    "SELECT (SELECT count(*) FROM statistic_snapshots), "
                    "(SELECT count(DISTINCT fingerprint) FROM statistic_snapshots), "
                    "(SELECT count(*) FROM occurrences)")).one())

            first = counts()
            assert main(replay) == 0
            assert counts() == first
            snaps, series, occurrences = first
            assert occurrences > 0 and snaps > 2 * occurrences and series > 20
            # each occurrence's snapshot is its signal's value, at its index
            (mismatched,) = conn.execute(text(
                "SELECT count(*) FROM occurrences o LEFT JOIN statistic_snapshots s "
                "ON s.fingerprint = o.fingerprint AND s.seq = o.seq "
                "WHERE s.id IS NULL OR s.value != o.value OR s.threshold != o.threshold")).one()
            assert mismatched == 0
            # and the alerts' series have samples between their signals, under their
            # fingerprint: before the first one too
            (before,) = conn.execute(text(
                "SELECT count(*) FROM alerts a JOIN statistic_snapshots s "
                "ON s.fingerprint = a.fingerprint AND s.seq < a.first_seq")).one()
            assert before > 0
    finally:
        store.close()
