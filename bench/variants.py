"""The same events, delivered otherwise: traffic rates, label delays, batchings, topic
interleavings, and a worker catching up a backlog. Used by ``bench/quality.py`` and by the
property tests (``tests/scenario/test_invariance.py``) to check that pages are a function
of the events alone.

- :func:`retime`: line ``k`` gets event time ``start + k * every`` (order unchanged): a
  traffic rate (as ``../shared/tools/retime.py`` does to a file).
- :func:`place`: a model's rows as events at a given rate and label delay: a prediction
  every ``every`` seconds, each labelled row's outcome ``delay`` seconds after it, in time
  order; inline labels stay on their prediction.
- :func:`interleave`: the input topics merged another way, each topic's order kept.
- :func:`replay_file`: the in-process pipeline over events in batches of any size.
- :func:`replay_backlog`: the live worker's processor
  (:class:`services.worker.processor.MessageProcessor`,
  with its topic alignment) fed as a consumer catching up topics that already hold every
  event: fetches of ``batch`` records, one topic drained before the others, the engine
  pausing what the aligner holds too much of, as the direct engine does.

Pages are compared as :data:`PageKey` tuples: what paged and at which event index.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from alerts.model import Page
from alerts.store.sql import SqlStore
from config.file import Config
from services.pipeline import Pipeline
from services.worker.processor import Incoming, MessageProcessor
from stream.signals import Signal, iso

# model, kind, subject, slice, version, statistic of the lead alert; the page's event index
PageKey = tuple[str, str, str, str | None, str | None, str, int]
START = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
TOPICS = ("predictions", "outcomes", "metrics")
_encode = msgspec.json.Encoder().encode


def retime(events: Sequence[dict[str, Any]], every: float,
           start: float = START) -> list[dict[str, Any]]:
    """Event ``k`` (in order) at ``start + k * every`` seconds."""
    return [{**ev, "ts": iso(start + k * every)} for k, ev in enumerate(events)]


@dataclass(frozen=True)
class Labelled:
    """One production row to place: its prediction event (without ``ts``), and its label
    with how it arrives: ``"outcome"`` (an outcome event later), ``"inline"``, ``"none"``;
    ``after``: events (metrics) that follow the prediction at its time."""

    prediction: dict[str, Any]
    label: Any
    mode: str
    after: tuple[dict[str, Any], ...] = ()


def place(rows: Sequence[Labelled], *, every: float, delay: float,
          start: float = START) -> list[dict[str, Any]]:
    """Predictions every ``every`` seconds, outcomes ``delay`` seconds after theirs, in time
    order (a prediction before an outcome of the same time)."""
    timed: list[tuple[float, int, int, dict[str, Any]]] = []
    for i, row in enumerate(rows):
        t = start + i * every
        pred = {**row.prediction, "type": "prediction", "ts": iso(t)}
        if row.mode == "inline":
            pred["label"] = row.label
        timed.append((t, 0, i, pred))
        for extra in row.after:
            timed.append((t, 0, i, {**extra, "ts": iso(t)}))
        if row.mode == "outcome":
            timed.append((t + delay, 1, i, {
                "type": "outcome", "ts": iso(t + delay), "model_id": pred["model_id"],
                "request_id": pred["request_id"], "label": row.label}))
    timed.sort(key=lambda x: (x[0], x[1], x[2]))
    return [ev for _, _, _, ev in timed]


def topic_of(event: dict[str, Any]) -> str:
    return {"prediction": "predictions", "outcome": "outcomes"}.get(str(event.get("type")),
                                                                     "metrics")


def interleave(events: Sequence[dict[str, Any]], rng: random.Random,
               max_lead: int) -> list[dict[str, Any]]:
    """The topics merged at random, each topic's own order kept, no topic more than
    ``max_lead`` events ahead of where it was (a worker reading one topic ahead)."""
    queues: dict[str, list[tuple[int, dict[str, Any]]]] = {t: [] for t in TOPICS}
    for k, ev in enumerate(events):
        queues[topic_of(ev)].append((k, ev))
    heads = dict.fromkeys(TOPICS, 0)
    out: list[dict[str, Any]] = []
    done = 0
    while done < len(events):
        oldest = min(queues[t][heads[t]][0] for t in TOPICS if heads[t] < len(queues[t]))
        ready = [t for t in TOPICS if heads[t] < len(queues[t])
                 and queues[t][heads[t]][0] - oldest <= max_lead]
        t = rng.choice(ready)
        out.append(queues[t][heads[t]][1])
        heads[t] += 1
        done += 1
    return out


def lines(events: Sequence[dict[str, Any]]) -> list[bytes]:
    return [_encode(ev) for ev in events]


def replay_file(config: Config, messages: Sequence[bytes],
                batches: Iterator[int] | None = None,
                on_signal: Callable[[Signal], None] | None = None,
                ) -> tuple[Pipeline, list[PageKey]]:
    """The in-process pipeline (no store) over ``messages``, cut into batches of the sizes
    ``batches`` yields (4096 each by default); its pages."""
    keys: list[PageKey] = []

    def paged(page: Page) -> None:  # the lead alert is in memory when it pages
        lead = pipeline.triage.alerts[page.alert_id]
        keys.append((page.model_id, page.kind, page.subject, lead.slice, lead.model_version,
                     lead.statistic, page.seq))

    pipeline = Pipeline(config, None, source="variants", on_signal=on_signal, on_page=paged,
                        keep_totals=False)
    k = 0
    while k < len(messages):
        size = next(batches, 4096) if batches is not None else 4096
        pipeline.feed(messages[k:k + max(size, 1)])
        k += max(size, 1)
    return pipeline, keys


def replay_backlog(config: Config, events: Sequence[dict[str, Any]], *, batch: int = 50_000,
                   first: str = "predictions", workdir: Path | None = None,
                   align: bool = True) -> list[PageKey]:
    """A worker started after every event was produced: fetches of up to ``batch`` records
    from the topics of one partition, ``first`` drained before the others, topics the
    processor finds crowded paused (as
    :class:`services.worker.aiokafka_engine.AiokafkaWorker` does). Record
    times are the events' production order. Returns its pages, from its store."""
    logs: dict[str, list[Incoming]] = {t: [] for t in TOPICS}
    for k, ev in enumerate(events):
        topic = topic_of(ev)
        logs[topic].append(Incoming(topic, 0, len(logs[topic]), str(ev.get("model_id", ""))
                                    .encode(), _encode(ev), timestamp=k))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        store = SqlStore(f"sqlite:///{tmp}/backlog.db")
        processor = MessageProcessor(config, store, app_id="backlog", inputs=TOPICS,
                                  checkpoint_interval=1e9)
        heads = dict.fromkeys(TOPICS, 0)
        order = (first, *(t for t in TOPICS if t != first))
        paused: set[str] = set()

        def behind(_: int) -> set[str]:
            return {t for t in TOPICS if heads[t] < len(logs[t])}

        for _ in range(100 * (len(events) // max(batch, 1) + 10)):  # bounded
            fetch: list[Incoming] = []
            for t in order:
                if t in paused and len(paused) < len(TOPICS):
                    continue
                take = logs[t][heads[t]:heads[t] + batch - len(fetch)]
                heads[t] += len(take)
                fetch.extend(take)
            processor.process(fetch, behind if align else None)
            paused = {t for t, _ in processor.crowded()}
            if not behind(0) and not processor.holding:
                break
        _, rows = store.query(
            "SELECT p.model_id, p.kind, p.subject, a.slice, a.model_version, a.statistic, "
            "p.seq "
            "FROM page_log p JOIN alerts a ON a.alert_id = p.alert_id "
            "WHERE p.escalation_level = 0 ORDER BY p.seq")
        store.close()
    return rows


def sizes(rng: random.Random, choices: Sequence[int]) -> Callable[[], Iterator[int]]:
    """Batch sizes drawn from ``choices``, for :func:`replay_file`."""
    def gen() -> Iterator[int]:
        while True:
            yield rng.choice(choices)
    return gen
