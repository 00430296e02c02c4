"""The live adapter: Kafka messages (from the Faust app) → the pipeline → output messages.

Thin on purpose: it groups a batch of Kafka events by input partition (topics are
co-partitioned by ``model_id``, so a model lives in one partition), feeds each partition's
own :class:`watchkeeper.pipeline.Pipeline`, and turns what comes out into messages for
``watchkeeper.signals`` and ``watchkeeper.deadletter``. No Faust import: the app hands it
``(topic, partition, offset, key, value)`` tuples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerts.store import Store
from stream.signals import Signal
from watchkeeper.config import Config
from watchkeeper.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


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


class LiveProcessor:
    """One pipeline per input partition, created on first use and resumed from the store.

    A pipeline's event indices start above every index the store has recorded, so a
    restarted worker never reuses an index that triage has already seen.
    """

    def __init__(self, config: Config, store: Store, *, app_id: str,
                 pipeline_factory: Callable[[int], Pipeline] | None = None) -> None:
        self.config = config
        self.store = store
        self.app_id = app_id
        self._factory = pipeline_factory or self._new_pipeline
        self.pipelines: dict[int, Pipeline] = {}

    def _new_pipeline(self, partition: int) -> Pipeline:
        pipeline = Pipeline(self.config, self.store, source=f"{self.app_id}:{partition}",
                            dry_run=True)
        pipeline.core.seq = self.store.max_seq() + 1
        return pipeline

    def process(self, batch: Sequence[Incoming]) -> Outputs:
        out = Outputs()
        by_partition: dict[int, list[Incoming]] = {}
        for msg in batch:
            by_partition.setdefault(msg.partition, []).append(msg)
        for partition, msgs in sorted(by_partition.items()):
            pipeline = self.pipelines.get(partition)
            if pipeline is None:
                pipeline = self.pipelines[partition] = self._factory(partition)
            result = pipeline.feed([m.value for m in msgs])
            out.accepted += result.accepted
            for seq, reject in result.rejects:
                src = msgs[reject.message if reject.message is not None else 0]
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
        return out


def _signal_message(signal: Signal) -> Outgoing:
    return Outgoing(signal.model_id.encode(), json.dumps(signal.to_dict()).encode())
