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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from config.settings import WorkerSettings
from services.worker.processor import Incoming, MessageProcessor, Outputs
from stream.topics import Topics

log = logging.getLogger("watchkeeper.worker.aiokafka")


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
        await self.worker.resume(set(assigned))


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

    async def resume(self, assigned: set[Any]) -> None:
        """Seek each newly assigned partition just past what its checkpoint holds."""
        assert self.consumer is not None
        for partition in sorted({tp.partition for tp in assigned}):
            saved = self.processor.store.load_checkpoint(self.processor.app_id, partition)
            offsets = saved.offsets if saved is not None else {}
            for topic in self.topics.inputs:
                tp = TopicPartition(topic, partition)
                if tp in assigned and topic in offsets:
                    self.consumer.seek(tp, offsets[topic] + 1)
            log.info("partition %d: assigned (checkpoint offsets %s)", partition, offsets)

    async def hand_over(self, partitions: set[int], *, checkpoint: bool = True) -> None:
        """Before partitions go (a rebalance, a shutdown): commit their checkpointed offsets
        (after a last checkpoint, on a clean stop), and forget them."""
        try:
            if checkpoint:
                self.processor.flush(partitions, force=True)
            await self._commit(partitions)
        except Exception as exc:  # their next owner resumes the last checkpoint instead
            log.warning("partitions %s handed over without a last checkpoint: %s",
                        sorted(partitions), exc)
        self.processor.revoke(partitions)

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
            await self.consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offsets not committed (a rebalance?): %s", exc)

    async def _send(self, out: Outputs) -> None:
        assert self.producer is not None
        for msg in out.deadletters:
            await self.producer.send(self.topics.deadletter, key=msg.key, value=msg.value,
                                     headers=list(msg.headers))
        for msg in out.signals:
            await self.producer.send(self.topics.signals, key=msg.key, value=msg.value)
        await self.producer.flush()

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
            if high is None or await self.consumer.position(tp) < high:
                behind[tp.partition].add(tp.topic)
        return _Default(behind)

    def _pause_crowded(self) -> None:
        """Pause the topic-partitions the aligner holds too much of, so that the consumer
        fetches the ones they wait for; resume them once drained."""
        assert self.consumer is not None
        crowded = {TopicPartition(t, p) for t, p in self.processor.crowded()}
        owned = self.consumer.assignment()
        paused = self.consumer.paused()
        if crowded & owned - paused:
            self.consumer.pause(*(crowded & owned - paused))
        if paused - crowded:
            self.consumer.resume(*(paused - crowded))

    async def run(self) -> None:
        s = self.settings
        bootstrap = s.kafka_bootstrap.split(",")
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=s.app_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout / 3) * 1000),
            max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
        self.consumer.subscribe(list(self.topics.inputs), listener=_Rebalance(self))
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
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
                    await self._send(self.processor.process(batch, behind.__getitem__))
                    self._pause_crowded()
                # checkpoints whose interval is up (also when idle), then their offsets
                self.processor.flush()
                await self._commit()
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

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(main())
