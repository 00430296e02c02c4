"""The Faust application: topics, the worker's agent, and its lifecycle.

Built by :func:`build_faust_app` from settings (no import-time app). Faust does what it is good
at: the app, topic declarations, the consumer group and its rebalancing, offset commits.
The hot path pays Faust's per-message cost once per message and the pipeline's cost per
batch: the agent takes up to ``batch_max`` messages at a time (``take_events``), and a
message may itself carry a JSON array of events (CONTRACT §1).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from config.settings import WorkerSettings
from services.health import Backoff
from services.worker.processor import Incoming, MessageProcessor
from stream.topics import Topics

log = logging.getLogger("watchkeeper.worker.faust")


def build_faust_app(settings: WorkerSettings, processor: MessageProcessor) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_host="127.0.0.1",
        key_serializer="raw",
        value_serializer="raw",
        producer_linger_ms=5,
        broker_session_timeout=settings.session_timeout,
        # big fetches and a deep buffer: the agent takes whole batches, so Faust must not
        # pause partitions between them
        stream_buffer_maxsize=4 * settings.batch_max,
        broker_max_poll_records=settings.batch_max,
        consumer_max_fetch_size=16 * 1024 * 1024,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
    )
    names = Topics.for_prefix(settings.topic_prefix)
    inputs = app.topic(*names.inputs, key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions)
    signals = app.topic(names.signals, key_serializer="raw", value_serializer="raw",
                        partitions=settings.partitions)
    deadletter = app.topic(names.deadletter, key_serializer="raw", value_serializer="raw",
                           partitions=settings.partitions)

    async def monitor(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max,
                                               within=settings.batch_within):
            batch = [Incoming(e.message.topic, e.message.partition, e.message.offset,
                              e.message.key, e.message.value) for e in events]
            out = processor.process(batch)
            backoff = Backoff()
            while out.failed:
                # the database is away: the batch is processed again once it answers (Faust
                # commits what the agent took, so it may not move on without it); the
                # processor forgot those partitions and resumes them from their checkpoints
                delay = backoff.next()
                log.warning("the database is away (retry in %.1f s): %s", delay,
                            next(iter(out.failed.values())))
                await asyncio.sleep(delay)
                again = processor.process([m for m in batch if m.partition in out.failed])
                out.deadletters += again.deadletters
                out.signals += again.signals
                out.failed = again.failed
            for msg in out.deadletters:
                await deadletter.send(key=msg.key, value=msg.value, headers=list(msg.headers))
            for msg in out.signals:
                await signals.send(key=msg.key, value=msg.value)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        processor.revoke({tp.partition for tp in revoked if tp.topic in names.inputs})

    app.on_partitions_revoked.connect(on_revoked)
    app.agent(inputs, name="watchkeeper.monitor")(monitor)
    return app


def run_faust(settings: WorkerSettings, processor: MessageProcessor) -> None:
    """Run the worker until it is stopped (SIGTERM/SIGINT); topics must exist
    (:func:`services.worker.admin.ensure_topics`)."""
    app = build_faust_app(settings, processor)
    faust.Worker(app, loglevel=settings.log_level).execute_from_commandline()
