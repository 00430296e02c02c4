"""The direct engine's sends of dead letters and signals, on a stand-in producer: only what
failed is sent again, what the broker can never take is dropped and counted, and a stop
ends the retries."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from alerts.store.sql import SqlStore
from config.file import load_config
from config.settings import WorkerSettings
from services.worker.aiokafka_engine import AiokafkaWorker
from services.worker.processor import MessageProcessor, Outgoing, Outputs
from sim.scenarios import generate, write_scenario


class Producer:
    """Fails as told: ``refuse`` values raise at send (queued ones before them go out);
    ``late`` values fail their delivery once (a timeout), then go."""

    def __init__(self, refuse: set[bytes], late: set[bytes]) -> None:
        self.refuse, self.late = refuse, set(late)
        self.delivered: list[bytes] = []

    async def send(self, topic: str, *, key: Any, value: bytes, headers: Any) -> Any:
        if value in self.refuse:
            raise MessageSizeTooLargeError("too large")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.late:
            self.late.discard(value)
            future.set_exception(KafkaTimeoutError())
        else:
            self.delivered.append(value)
            future.set_result(None)
        return future


@pytest.fixture
def worker(tmp_path: Path) -> AiokafkaWorker:
    files = write_scenario(generate("stationary", predictions=1_000, seed=3), tmp_path / "s.jsonl")
    processor = MessageProcessor(load_config(files.config), SqlStore(str(tmp_path / "w.db")),
                                 app_id="w")
    return AiokafkaWorker(WorkerSettings(config=files.config), processor)


def test_only_what_failed_is_sent_again_and_what_never_fits_is_dropped(
    worker: AiokafkaWorker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("services.worker.aiokafka_engine.asyncio.sleep", _no_wait)
    producer = Producer(refuse={b"huge"}, late={b"b"})
    worker.producer = producer
    out = Outputs(deadletters=[Outgoing(None, v) for v in (b"a", b"huge", b"b")],
                  signals=[Outgoing(b"m", b"s1")])
    run(worker._send(out))
    assert producer.delivered == [b"a", b"s1", b"b"]  # b once, after its timeout
    dropped = worker.processor.metrics.registry.get_sample_value(
        "watchkeeper_worker_dropped_outputs_total", {"topic": worker.topics.deadletter})
    assert dropped == 1


def test_a_stop_ends_the_retries(worker: AiokafkaWorker,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.worker.aiokafka_engine.asyncio.sleep", _no_wait)
    producer = Producer(refuse=set(), late={b"a"})
    worker.producer = producer
    worker.stop()
    run(worker._send(Outputs(deadletters=[Outgoing(None, b"a")])))
    assert producer.delivered == []  # not sent, and no endless retry


async def _no_wait(_: float) -> None:
    return None


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run it on a loop of its own thread (the browser tests' Playwright keeps a loop
    running in this one for the session)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result(timeout=60)
