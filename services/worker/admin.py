"""Kafka administration (kafka-python): the worker's topics."""

from __future__ import annotations

import contextlib

from config.settings import WorkerSettings
from stream.topics import Topics


def ensure_topics(settings: WorkerSettings) -> None:
    """Create the worker's topics (co-partitioned: the same partition count) if missing."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, settings.partitions, 1)
                   for name in Topics.for_prefix(settings.topic_prefix).all
                   if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(missing)
    finally:
        admin.close()
