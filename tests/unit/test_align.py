"""Aligning a partition's input topics by record time (``services.worker.align``), and the live
processor catching up a backlog through it: the same pages as the file replay, at the
same event indices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from config.file import load_config
from services.worker.align import Aligner
from services.worker.processor import Incoming
from sim.scenarios import generate, write_scenario

if TYPE_CHECKING:
    # bench/ holds scripts, not a package: mypy, given bench/, names the module "variants"
    from variants import lines, replay_backlog, replay_file
else:
    from bench.variants import lines, replay_backlog, replay_file


def msg(topic: str, offset: int, ts: int) -> Incoming:
    return Incoming(topic, 0, offset, None, b"", timestamp=ts)


def test_a_topic_that_is_behind_holds_the_others_at_its_last_time() -> None:
    a = Aligner(("p", "o"))
    assert a.release([msg("p", i, t) for i, t in enumerate([1, 4, 6, 8])], {"o"}) == []
    out = a.release([msg("o", 0, 2), msg("o", 1, 6)], {"o", "p"})
    assert [(m.topic, m.timestamp) for m in out] == [("p", 1), ("o", 2), ("p", 4), ("p", 6),
                                                     ("o", 6)]
    assert a.held == 1  # p at 8: o may still send something earlier
    assert [(m.topic, m.timestamp) for m in a.release([], set())] == [("p", 8)]


def test_redelivered_messages_are_not_taken_twice() -> None:
    a = Aligner(("p", "o"))
    a.release([msg("p", 0, 1), msg("p", 1, 2)], {"o"})
    assert a.release([msg("p", 0, 1), msg("p", 1, 2), msg("p", 2, 3)], {"o"}) == []
    assert a.held == 3


def test_a_silent_topic_holds_nobody_after_max_hold() -> None:
    now = [0.0]
    a = Aligner(("p", "o"), max_hold=30.0, clock=lambda: now[0])
    assert a.release([msg("p", 0, 1)], {"o"}) == []
    now[0] = 29.0
    assert a.release([], {"o"}) == []
    now[0] = 31.0
    assert [m.timestamp for m in a.release([], {"o"})] == [1]


def test_held_messages_are_bounded_oldest_first() -> None:
    a = Aligner(("p", "o"), max_held=3, pause_at=2)
    out = a.release([msg("p", i, 10 + i) for i in range(5)], {"o"})
    assert [m.timestamp for m in out] == [10, 11]
    assert a.held == 3 and a.crowded() == {"p"}


def test_a_worker_catching_up_a_backlog_pages_as_the_replay_does(tmp_path: Path) -> None:
    scenario = generate("broken_pipeline", predictions=8_000, seed=7)
    files = write_scenario(scenario, tmp_path / "bp.jsonl")
    config = load_config(files.config)
    _, replayed = replay_file(config, lines(scenario.events))
    assert [k[1:3] for k in replayed] == [("performance", "accuracy")]
    for first in ("predictions", "outcomes"):
        backlog = replay_backlog(config, scenario.events, batch=5_000, first=first,
                                 workdir=tmp_path)
        assert backlog == replayed, first
