"""Producing events to Kafka (kafka-python): each event to its type's topic, keyed by
``model_id``; optionally as batch messages (a JSON array of up to ``batch_size`` events of
one type and model), at an optional rate. Used by ``watchkeeper simulate --bootstrap``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
from kafka import KafkaProducer

from stream.topics import DEFAULT, Topics

_encode = msgspec.json.Encoder().encode


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=10,
                         batch_size=512 * 1024, acks="all", compression_type=None)


def produce(
    kafka: KafkaProducer,
    events: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = 1,
    rate: float = 0.0,
    on_sent: Callable[[int], None] | None = None,
    topics: Topics = DEFAULT,
) -> int:
    """Send events; returns how many. ``rate`` > 0 paces to that many events per second."""
    pending: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    sent = 0
    start = time.perf_counter()

    def flush(key: tuple[str, str]) -> None:
        nonlocal sent
        items = pending.pop(key)
        value = _encode(items[0]) if batch_size == 1 else _encode(items)
        kafka.send(key[0], key=key[1].encode(), value=value)
        sent += len(items)
        if on_sent is not None:
            on_sent(len(items))
        if rate > 0:
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)

    for event in events:
        key = (topics.for_type(str(event["type"])), str(event["model_id"]))
        group = pending.setdefault(key, [])
        group.append(event)
        if len(group) >= batch_size:
            flush(key)
    for key in list(pending):
        flush(key)
    kafka.flush()
    return sent
