"""The worker's processor: Kafka messages (from either engine) → the pipeline → output
messages.

Thin on purpose: it groups a batch of Kafka events by input partition (topics are
co-partitioned by ``model_id``, so a model lives in one partition), feeds each partition's
own :class:`services.pipeline.Pipeline`, and turns what comes out into messages for
``watchkeeper.signals`` and ``watchkeeper.deadletter``. No Kafka client import: the
engines (:mod:`services.worker.aiokafka_engine`, :mod:`services.worker.faust_engine`) hand it
:class:`Incoming` messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from alerts.store import Checkpoint, PipelineStore, Progress
from alerts.triage import Changes
from config.errors import RetryableError
from config.file import Config
from services.pipeline import Pipeline, StaleCheckpoint
from services.worker.align import Aligner
from services.worker.metrics import WorkerMetrics
from stream.signals import Signal

log = logging.getLogger("watchkeeper.worker")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One Kafka message; ``timestamp`` is its record time (ms), which orders the input
    topics of a partition (:mod:`services.worker.align`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Outputs:
    signals: list[Outgoing] = field(default_factory=list)
    deadletters: list[Outgoing] = field(default_factory=list)
    accepted: int = 0
    events: int = 0  # accepted, duplicates and rejected
    # partitions whose batch the store could not take (the database away), with why: the
    # processor forgot them; the engine seeks them back to their checkpoints and retries
    failed: dict[int, str] = field(default_factory=dict)


class MessageProcessor:
    """One pipeline per input partition, resumed from its checkpoint.

    Every batch's alerts and pages are written in one transaction, with the partition's
    progress (the last input offset per topic processed). A checkpoint (the monitors'
    whole state, and the offsets it includes) goes into that transaction too when
    ``checkpoint_interval`` seconds have passed since the partition's last one (0: every
    batch); :meth:`flush` writes due ones between batches. The state grows with traffic
    (the dedupe memory, labels awaiting their join), so writing it with every batch would
    cost more than the monitoring itself.

    Only checkpointed offsets may be committed to Kafka (:meth:`committable`). A worker
    that dies is resumed from the checkpoint by whoever gets the partition, which rebuilds
    the monitors' state from what followed it up to the stored progress *quietly*: those
    events are counted once, but their signals and rejects are not taken again (the dead
    worker's alerts, pages and rejects for them are in the store already, and a Kafka fetch
    interleaves the topics differently each time, so they would not even come out the
    same). Events past the progress are processed as usual, with indices above all the dead
    worker used. Offsets up to the checkpoint that Kafka redelivers are skipped.
    """

    def __init__(self, config: Config, store: PipelineStore, *, app_id: str, dry_run: bool = True,
                 checkpoint_interval: float = 0.0,
                 pipeline_factory: Callable[[int], Pipeline] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 inputs: Sequence[str] = (), metrics: WorkerMetrics | None = None) -> None:
        self.config = config
        self.store = store
        self.app_id = app_id
        self.dry_run = dry_run  # False: pages are queued in the outbox for the notifier
        self.checkpoint_interval = checkpoint_interval
        self._factory = pipeline_factory or self._new_pipeline
        self._clock = clock
        self.pipelines: dict[int, Pipeline] = {}
        self.offsets: dict[int, dict[str, int]] = {}  # partition -> topic -> last offset in
        self.saved: dict[int, dict[str, int]] = {}  # ... in the partition's last checkpoint
        self._saved_at: dict[int, float] = {}  # partition -> clock() of its last checkpoint
        self._behind: set[int] = set()  # partitions processed past their last checkpoint
        # partition -> topic -> last offset a dead worker wrote: rebuilt quietly up to there
        self.quiet: dict[int, dict[str, int]] = {}
        self.skipped = 0
        self.inputs = tuple(inputs)  # the input topics, in the order that breaks time ties
        self.aligners: dict[int, Aligner] = {}
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.metrics.watch_checkpoints(self._checkpoint_ages)

    def _new_pipeline(self, partition: int) -> Pipeline:
        pipeline = Pipeline(self.config, self.store, source=f"{self.app_id}:{partition}",
                            dry_run=self.dry_run, keep_totals=False,
                            on_page=lambda _: self.metrics.pages.inc(),
                            on_signal=lambda sig: self.metrics.signals.labels(
                                kind=str(sig.kind)).inc(),
                            on_changes=self._count)
        saved = self.store.load_checkpoint(self.app_id, partition)
        stale: StaleCheckpoint | None = None
        if saved is not None:
            try:
                for note in pipeline.restore(saved.state):  # the configuration may have changed
                    log.warning("partition %d: %s", partition, note)
            except StaleCheckpoint as exc:
                # the monitors changed since it was written: they start afresh where it
                # ended (the history before it is in the store)
                log.warning("partition %d: %s; its monitors start afresh at offsets %s",
                            partition, exc, saved.offsets)
                stale = exc
            self.offsets[partition] = dict(saved.offsets)
            self.saved[partition] = dict(saved.offsets)
            if stale is None:
                log.info("partition %d: resumed from its checkpoint (%d events, offsets %s)",
                         partition, saved.events, saved.offsets)
        if saved is None or stale is not None:
            # indices above all the store has seen (triage never takes them for old ones),
            # the same on every start of this partition until it has a checkpoint
            base = self.store.seq_base(f"{self.app_id}:{partition}")
            if stale is not None and saved is not None:
                # above every index the unreadable checkpoint's core can have used
                base = max(base + saved.events, stale.seq)
            pipeline.core.seq = base
            if saved is None:
                self.offsets[partition] = {}
                log.info("partition %d: no checkpoint, starting fresh", partition)
        progress = self.store.load_progress(self.app_id, partition)
        ahead = {topic: offset for topic, offset in (progress.offsets if progress else {}).items()
                 if offset > self.offsets[partition].get(topic, -1)}
        if ahead:
            self.quiet[partition] = ahead
            log.info("partition %d: rebuilding quietly up to offsets %s", partition, ahead)
        return pipeline

    def _count(self, changes: Changes) -> None:
        """The alerts a batch opened (every occurrence of theirs is in it) and the
        incidents it resolved."""
        new = Counter(o.alert_id for o in changes.occurrences)
        self.metrics.alerts.inc(sum(1 for alert in changes.alerts.values()
                                    if new[alert.alert_id] == alert.occurrences))
        self.metrics.resolved.inc(len(changes.resolved_incidents))

    def _checkpointer(self, partition: int,
                      pipeline: Pipeline) -> Callable[[bytes], Checkpoint]:
        marks = dict(self.offsets[partition])

        def make(state: bytes) -> Checkpoint:
            return Checkpoint(self.app_id, partition, state, marks, pipeline.core.processed)

        return make

    def _progress(self, partition: int, pipeline: Pipeline) -> Callable[[], Progress]:
        marks = dict(self.offsets[partition])
        return lambda: Progress(self.app_id, partition, marks, pipeline.core.processed)

    def _checkpoint_ages(self) -> dict[int, float]:
        now = self._clock()
        return {p: now - at if p in self._behind else 0.0
                for p, at in list(self._saved_at.items())}

    def _due(self, partition: int) -> bool:
        last = self._saved_at.get(partition)
        return (last is None or self.checkpoint_interval <= 0
                or self._clock() - last >= self.checkpoint_interval)

    def _saved_now(self, partition: int) -> None:
        self.saved[partition] = dict(self.offsets[partition])
        self._saved_at[partition] = self._clock()
        self._behind.discard(partition)

    def flush(self, partitions: set[int] | None = None, *, force: bool = False) -> None:
        """Checkpoint the partitions processed past their last checkpoint: those whose
        interval is up, or all of them (``force``: before a clean stop)."""
        for partition in sorted(self._behind if partitions is None
                                else self._behind & partitions):
            if force or self._due(partition):
                pipeline = self.pipelines[partition]
                pipeline.checkpoint(self._checkpointer(partition, pipeline))
                self._saved_now(partition)

    def committable(self) -> dict[tuple[str, int], int]:
        """Offsets Kafka may commit, per (topic, partition): the next after the last
        checkpointed one (a restart resumes the checkpoint, so no further)."""
        return {(topic, partition): offset + 1 for partition, marks in self.saved.items()
                for topic, offset in marks.items()}

    def revoke(self, partitions: set[int]) -> None:
        """Forget partitions handed to another worker (it resumes their checkpoints)."""
        for partition in partitions:
            if self.pipelines.pop(partition, None) is not None:
                log.info("partition %d: revoked", partition)
            self.offsets.pop(partition, None)
            self.saved.pop(partition, None)
            self._saved_at.pop(partition, None)
            self._behind.discard(partition)
            self.quiet.pop(partition, None)
            self.aligners.pop(partition, None)  # what it held is fetched again by the next

    def _mark(self, partition: int, messages: list[Incoming]) -> dict[str, int]:
        """Record ``messages`` as processed; returns the partition's last offset per topic."""
        done = self.offsets[partition]
        for m in messages:
            done[m.topic] = max(m.offset, done.get(m.topic, -1))
        return done

    def _rebuild(self, partition: int, pipeline: Pipeline, messages: list[Incoming]) -> int:
        """Feed the monitors what a dead worker processed after its checkpoint (its signals
        and rejects are in the store); returns how many events that was."""
        if not messages:
            return 0
        done = self._mark(partition, messages)
        result = pipeline.core.process([m.value for m in messages])
        until = self.quiet[partition]
        if all(done.get(topic, -1) >= offset for topic, offset in until.items()):
            del self.quiet[partition]
            log.info("partition %d: rebuilt, processing on", partition)
        self._behind.add(partition)
        return result.accepted + result.duplicates + len(result.rejects)

    def process(self, batch: Sequence[Incoming],
                behind: Callable[[int], Collection[str]] | None = None) -> Outputs:
        """Process a fetch. With ``behind`` (the input topics of a partition that still
        have unread records), each partition's topics are aligned by record time
        (:mod:`services.worker.align`) first: what cannot be processed yet is held."""
        started = time.perf_counter()
        out = self._process(batch, behind)
        took = time.perf_counter() - started
        log.info("batch: %d messages, %d events in %.1f ms", len(batch), out.events,
                 took * 1e3)
        m = self.metrics
        m.batch_seconds.observe(took)
        for topic, count in Counter(msg.topic for msg in batch).items():
            m.messages.labels(topic=topic).inc(count)
        if out.failed:
            m.store_failures.inc(len(out.failed))
        return out

    @property
    def holding(self) -> bool:
        """Whether messages are held for alignment (to be released by a later call)."""
        return any(a.held for a in self.aligners.values())

    def crowded(self) -> set[tuple[str, int]]:
        """(topic, partition) holding so many messages that the engine should pause it."""
        return {(t, p) for p, a in self.aligners.items() for t in a.crowded()}

    def _process(self, batch: Sequence[Incoming],
                 behind: Callable[[int], Collection[str]] | None) -> Outputs:
        out = Outputs()
        by_partition: dict[int, list[Incoming]] = {}
        for msg in batch:
            by_partition.setdefault(msg.partition, []).append(msg)
        if behind is not None:
            for partition in self.aligners:
                by_partition.setdefault(partition, [])
        for partition, msgs in sorted(by_partition.items()):
            try:
                self._partition(partition, msgs, behind, out)
            except RetryableError as exc:
                # the database is away: forget the partition (its state moved on, the store
                # did not take it); the engine seeks it back to its checkpoint and retries,
                # and the store's idempotent writes take the batch once
                self.revoke({partition})
                out.failed[partition] = str(exc)
                log.warning("partition %d: batch not stored, to be retried: %s",
                            partition, exc)
            except Exception:
                # not the database's fault nor a message's (those are rejects): a bug. The
                # partition is rebuilt from its checkpoint by whoever processes it next
                self.revoke({partition})
                raise
        return out

    def _partition(self, partition: int, msgs: list[Incoming],
                   behind: Callable[[int], Collection[str]] | None, out: Outputs) -> None:
        """Process one partition's part of a fetch into ``out``."""
        pipeline = self.pipelines.get(partition)
        if pipeline is None:
            pipeline = self.pipelines[partition] = self._factory(partition)
        done = self.offsets.setdefault(partition, {})
        fresh = [m for m in msgs if m.offset > done.get(m.topic, -1)]
        self.skipped += len(msgs) - len(fresh)
        if behind is not None:
            aligner = self.aligners.get(partition)
            if aligner is None:
                aligner = self.aligners[partition] = Aligner(self.inputs)
            fresh = aligner.release(fresh, behind(partition))
        if not fresh:
            return
        until = self.quiet.get(partition)
        if until is not None:
            again = [m for m in fresh if m.offset <= until.get(m.topic, -1)]
            fresh = [m for m in fresh if m.offset > until.get(m.topic, -1)]
            out.events += self._rebuild(partition, pipeline, again)
            if not fresh:
                return
        self._mark(partition, fresh)
        due = self._due(partition)
        result = pipeline.feed(
            [m.value for m in fresh],
            checkpoint=self._checkpointer(partition, pipeline) if due else None,
            progress=self._progress(partition, pipeline))
        if due:
            self._saved_now(partition)
        else:
            self._behind.add(partition)
        out.accepted += result.accepted
        out.events += result.accepted + result.duplicates + len(result.rejects)
        m = self.metrics
        m.events.labels(outcome="accepted").inc(result.accepted)
        m.events.labels(outcome="duplicate").inc(result.duplicates)
        m.events.labels(outcome="rejected").inc(len(result.rejects))
        for reason, count in Counter(str(r.reason) for _, r in result.rejects).items():
            m.rejected.labels(reason=reason).inc(count)
        for seq, reject in result.rejects:
            src = fresh[reject.message if reject.message is not None else 0]
            headers = [("reason", str(reject.reason).encode()),
                       ("detail", reject.detail.encode("utf-8", "replace")[:1000]),
                       ("source.topic", src.topic.encode()),
                       ("source.partition", str(src.partition).encode()),
                       ("source.offset", str(src.offset).encode()),
                       ("seq", str(seq).encode())]
            if reject.index is not None:
                headers.append(("batch.index", str(reject.index).encode()))
            out.deadletters.append(Outgoing(src.key, reject.raw, tuple(headers)))
        out.signals.extend(_signal_message(s) for s in result.signals)


def _signal_message(signal: Signal) -> Outgoing:
    return Outgoing(signal.model_id.encode(), json.dumps(signal.to_dict()).encode())
