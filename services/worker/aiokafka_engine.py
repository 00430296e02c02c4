"""The aiokafka engine (``WATCHKEEPER_ENGINE=direct``, the default): the worker's hot path
on an aiokafka consumer group, without Faust's per-message machinery.

Faust costs about 60 µs a message before any work is done; with single-event messages
that is most of the budget. This engine reads batches with ``getmany`` and hands them to
the same :class:`services.worker.processor.MessageProcessor`. Rebalancing is Kafka's consumer-group
protocol: on assignment each partition's checkpoint is loaded and the consumer seeks just
past the offsets it holds; only checkpointed offsets are committed (checkpoints are written
every ``checkpoint_interval`` seconds, in a batch's transaction or when idle, and on a clean
stop). After a crash or a rebalance the new owner resumes the checkpoint and rebuilds what
followed it quietly (:class:`services.worker.processor.MessageProcessor`): nothing lost,
nothing twice.

While the database is away (:class:`config.errors.RetryableError` from the store), the
partitions whose batch it could not take are paused and forgotten, the worker reports
not ready (``/readyz``), and it retries with backoff (0.5 s doubling to 30 s); once the
database answers, those partitions are sought back to their checkpoints and processed
again (the store's writes are idempotent, so what it had taken counts once). Consuming
goes on (paused) meanwhile, so the worker keeps its place in the group however long the
outage. A broker away is the Kafka client's to reconnect; output sends are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError

from config.errors import RetryableError
from config.settings import WorkerSettings
from services.health import Backoff, HealthServer, Readiness
from services.worker.processor import Incoming, MessageProcessor, Outgoing, Outputs
from stream.topics import Topics

log = logging.getLogger("watchkeeper.worker.aiokafka")
COMMIT_TIMEOUT = 10.0  # seconds a commit may take before the loop goes on without it


class _Default(dict[int, set[str]]):
    """Partitions not assigned here have nothing behind."""

    def __missing__(self, key: int) -> set[str]:
        return set()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: AiokafkaWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # no last checkpoint here: a member the group has dropped (a batch that outlasted
        # the session) is told only now, and must not overwrite the new owner's; the new
        # owner rebuilds from the last checkpoint quietly
        await self.worker.hand_over({tp.partition for tp in revoked}, checkpoint=False)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.worker.resume(set(assigned))
        except RetryableError as exc:  # no checkpoint to seek to yet: paused until there is
            self.worker.failed({tp.partition for tp in assigned}, str(exc))


class AiokafkaWorker:
    """Consume the input topics as one consumer group, process per batch, commit after."""

    def __init__(self, settings: WorkerSettings, processor: MessageProcessor) -> None:
        self.settings = settings
        self.processor = processor
        self.topics = Topics.for_prefix(settings.topic_prefix)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self._committed: dict[TopicPartition, int] = {}
        self.readiness = Readiness()
        processor.metrics.ready.set_function(lambda: float(self.readiness.ready))
        self._failed: set[int] = set()  # partitions to seek back to their checkpoints
        self._outage = False  # the database was away: retry at _retry_at
        self._retry_at = 0.0
        self._backoff = Backoff()  # between retries while the database is away

    async def resume(self, assigned: set[Any]) -> None:
        """Seek each newly assigned partition just past what its checkpoint holds (to
        the start of a topic it holds nothing of); ``RetryableError`` while the database
        is away."""
        assert self.consumer is not None
        for partition in sorted({tp.partition for tp in assigned}):
            saved = await asyncio.to_thread(self.processor.store.load_checkpoint,
                                            self.processor.app_id, partition)
            offsets = saved.offsets if saved is not None else {}
            for topic in self.topics.inputs:
                tp = TopicPartition(topic, partition)
                if tp not in assigned:
                    continue
                if topic in offsets:
                    self.consumer.seek(tp, offsets[topic] + 1)
                else:
                    await self.consumer.seek_to_beginning(tp)
            log.info("partition %d: assigned (checkpoint offsets %s)", partition, offsets)

    def failed(self, partitions: set[int], reason: str) -> None:
        """The database is away: pause ``partitions`` (the processor forgot them) until
        :meth:`_recover` seeks them back to their checkpoints."""
        self._failed |= partitions
        self._outage_now(reason)
        self._pause()

    def _outage_now(self, reason: str) -> None:
        loop = asyncio.get_running_loop()
        if not self._outage:
            # the backoff goes on growing from the last outage's unless a batch has been
            # stored since (the database answering a ping is not enough: a batch that
            # fails whatever the ping says must not be retried every half second)
            self._outage = True
            self._retry_at = loop.time() + self._backoff.next()
        self.readiness.unready(reason)

    async def _recover(self) -> None:
        """When a retry is due: reach the database, seek the failed partitions back to
        their checkpoints and resume them; else back off further."""
        assert self.consumer is not None
        loop = asyncio.get_running_loop()
        if not self._outage or loop.time() < self._retry_at:
            return
        retrying = set(self._failed)  # a rebalance meanwhile may add (or take) some
        try:
            await asyncio.to_thread(self.processor.store.ping)
            # what is ours now, after the await (a rebalance runs in its own task)
            owned = self.consumer.assignment()
            await self.resume({tp for tp in owned if tp.partition in retrying})
        except (RetryableError, IllegalStateError) as exc:  # away still, or moved meanwhile
            delay = self._backoff.next()
            self._retry_at = loop.time() + delay
            log.warning("the database is still away (next try in %.1f s): %s", delay, exc)
            self.readiness.unready(str(exc))
            return
        log.warning("the database is back: partitions %s resume from their checkpoints",
                    sorted(retrying))
        self._failed -= retrying
        if self._failed:  # failed again while this one was retried: its turn is next
            self._retry_at = loop.time()
            return
        self._outage = False
        self._pause()
        self.readiness.recovered()

    async def hand_over(self, partitions: set[int], *, checkpoint: bool = True) -> None:
        """Before partitions go (a rebalance, a shutdown): commit their checkpointed offsets
        (after a last checkpoint, on a clean stop), and forget them."""
        try:
            if checkpoint:
                self.processor.flush(partitions, force=True)
        except Exception as exc:  # their next owner resumes the last checkpoint instead
            log.warning("partitions %s handed over without a last checkpoint: %s",
                        sorted(partitions), exc)
        try:
            await self._commit(partitions)  # the checkpoints they have, at least
        except Exception as exc:
            log.warning("partitions %s handed over uncommitted: %s", sorted(partitions), exc)
        self.processor.revoke(partitions)
        self.processor.metrics.forget(self.topics.inputs, partitions)

    async def _commit(self, partitions: set[int] | None = None) -> None:
        """Commit the checkpointed offsets not yet committed (of partitions still ours: a
        rebalance may have moved some; their new owner resumes from the checkpoint)."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        offsets = {}
        for (topic, partition), offset in self.processor.committable().items():
            tp = TopicPartition(topic, partition)
            if (tp in owned and (partitions is None or partition in partitions)
                    and self._committed.get(tp) != offset):
                offsets[tp] = offset
        if not offsets:
            return
        try:
            # aiokafka retries a commit while the broker is away: bounded here, so that the
            # loop (and a stop) goes on; the offsets are committed with a later round
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offsets not committed (a rebalance?): %s", exc)
        except (KafkaError, TimeoutError) as exc:
            log.warning("offsets not committed (the broker?): %r", exc)

    async def _send(self, out: Outputs) -> None:
        """Send a batch's dead letters and signals (their alerts and rejects are in the
        store already). What the broker cannot take for now is sent again, with backoff,
        until it goes or the worker stops; what it can never take (too large for it, say)
        is dropped, counted and logged: the store has it. The producer is idempotent: its
        own retries write nothing twice, and only what failed is sent again."""
        assert self.producer is not None
        pending = [(self.topics.deadletter, m) for m in out.deadletters] + [
            (self.topics.signals, m) for m in out.signals]
        backoff = Backoff()
        while pending:
            again: list[tuple[str, Outgoing]] = []
            queued: list[tuple[tuple[str, Outgoing], asyncio.Future[Any]]] = []
            for item in pending:
                topic, m = item
                try:
                    queued.append((item, await self.producer.send(
                        topic, key=m.key, value=m.value, headers=list(m.headers) or None)))
                except KafkaError as exc:
                    self._failed_send(item, exc, again)
            for item, future in queued:
                try:
                    await future
                except KafkaError as exc:
                    self._failed_send(item, exc, again)
            pending = again
            if pending:
                if self._stop.is_set():
                    log.warning("stopping: %d output message(s) not sent", len(pending))
                    return
                delay = backoff.next()
                log.warning("%d output message(s) not sent, retrying in %.1f s",
                            len(pending), delay)
                await asyncio.sleep(delay)

    def _failed_send(self, item: tuple[str, Outgoing], exc: KafkaError,
                     again: list[tuple[str, Outgoing]]) -> None:
        if getattr(exc, "retriable", False) or isinstance(exc, KafkaTimeoutError):
            again.append(item)
            return
        topic, m = item
        self.processor.metrics.dropped_outputs.labels(topic=topic).inc()
        log.error("%s: a message of %d bytes the broker refuses (%r) is dropped; the store "
                  "keeps it", topic, len(m.value), exc)

    def stop(self) -> None:
        self._stop.set()

    async def _behind(self) -> dict[int, set[str]]:
        """Per partition, the input topics with records not read yet (the consumer's
        position short of the high watermark, or no fetch yet to tell): the aligner holds
        the others back to them (:mod:`services.worker.align`)."""
        assert self.consumer is not None
        behind: dict[int, set[str]] = {}
        for tp in self.consumer.assignment():
            behind.setdefault(tp.partition, set())
            high = self.consumer.highwater(tp)
            if high is None:
                behind[tp.partition].add(tp.topic)
                continue
            position = await self.consumer.position(tp)
            self.processor.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)
                                              ).set(max(0, high - position))
            if position < high:
                behind[tp.partition].add(tp.topic)
        return _Default(behind)

    def _pause(self) -> None:
        """Pause the topic-partitions the aligner holds too much of, so that the consumer
        fetches the ones they wait for, and those of failed partitions; resume them once
        drained, or recovered."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        wanted = {TopicPartition(t, p) for t, p in self.processor.crowded()} | {
            tp for tp in owned if tp.partition in self._failed}
        paused = self.consumer.paused()
        if wanted & owned - paused:
            self.consumer.pause(*(wanted & owned - paused))
        if paused - wanted:
            self.consumer.resume(*(paused - wanted))

    async def run(self) -> None:
        s = self.settings
        bootstrap = s.kafka_bootstrap.split(",")
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=s.app_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout / 3) * 1000),
            max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
        self.consumer.subscribe(list(self.topics.inputs), listener=_Rebalance(self))
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                         enable_idempotence=True)
        await self.producer.start()
        await self.consumer.start()
        log.info("direct worker consuming %s as group %s", self.topics.inputs, s.app_id)
        try:
            while not self._stop.is_set():
                records = await self.consumer.getmany(timeout_ms=int(s.batch_within * 1000),
                                                      max_records=s.batch_max)
                batch = [Incoming(tp.topic, tp.partition, r.offset, r.key, r.value,
                                  r.timestamp) for tp, rs in records.items() for r in rs]
                if batch or self.processor.holding:
                    behind = await self._behind()
                    out = self.processor.process(batch, behind.__getitem__)
                    if out.failed:
                        self.failed(set(out.failed), next(iter(out.failed.values())))
                    elif out.events and not self._outage:
                        self._backoff.reset()  # a batch stored: the database is back
                    await self._send(out)
                    self._pause()
                try:
                    # checkpoints whose interval is up (also when idle), then their offsets;
                    # while the database is away, only when a retry is due
                    if not self._outage or asyncio.get_running_loop().time() >= self._retry_at:
                        self.processor.flush()
                except RetryableError as exc:  # nothing moved: flushed on a later round
                    self._outage_now(str(exc))
                await self._commit()
                await self._recover()
            # a clean stop: the next owner of these partitions resumes where this one ended
            await self.hand_over(set(self.processor.pipelines))
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            with contextlib.suppress(Exception):
                await self.producer.stop()


def run_aiokafka(settings: WorkerSettings, processor: MessageProcessor) -> None:
    """Run the direct engine until SIGTERM/SIGINT."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    worker = AiokafkaWorker(settings, processor)
    health = (HealthServer(worker.readiness, host=settings.web_host, port=settings.web_port,
                           registry=processor.metrics.registry).start()
              if settings.web_port else None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    try:
        asyncio.run(main())
    finally:
        if health is not None:
            health.stop()
