"""The fast paths of the core (batch-wise decoding and checks, the duplicate filter's memory,
numeric slice labels) must give exactly what the slow, one-by-one paths give."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from config.file import load_config
from sim.scenarios import generate, write_scenario
from stream.core import Core
from stream.events import DECODE_CHUNK, DedupeSet, EventDecoder, Reject
from stream.reference import SliceDim, load_profiles

MODEL = "car_loan"


def enc(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def metric(i: int, **over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "metric", "ts": 1551441600 + i, "model_id": MODEL,
                          "name": "subscribed", "value": 1.0, "event_id": f"e{i}"}
    ev.update(over)
    return ev


def prediction(i: int, **over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "prediction", "ts": "2019-03-01T12:00:00Z",
                          "model_id": MODEL, "features": {"x": 1.5, "c": "40K - 60K €"},
                          "prediction": 1, "score": 0.25, "event_id": f"p{i}"}
    ev.update(over)
    return ev


def one_by_one(dec: EventDecoder, messages: list[bytes], start: int) -> tuple[
        list[Any], list[int], list[tuple[int, Reject]]]:
    """decode_many, one message at a time (so no chunk of messages is checked as a whole)."""
    events: list[Any] = []
    seqs: list[int] = []
    rejects: list[tuple[int, Reject]] = []
    seq = start
    for position, message in enumerate(messages):
        evs, ss, rs = dec.decode_many([message], seq)
        events += evs
        seqs += ss
        rejects += [(s, Reject(r.reason, r.detail, r.raw, r.index, position)) for s, r in rs]
        seq += len(evs) + len(rs)
    return events, seqs, rejects


def test_decode_many_in_chunks_agrees_with_one_by_one() -> None:
    dec = EventDecoder({MODEL}, max_event_bytes=400)
    messages = [enc(prediction(i) if i % 3 else metric(i)) for i in range(3 * DECODE_CHUNK)]
    messages[DECODE_CHUNK + 7] = enc(metric(7, model_id="zz"))  # one bad message in chunk 2
    messages[DECODE_CHUNK + 9] = b"[" + enc(metric(9)) + b"," + enc(metric(10)) + b"]"
    messages[2 * DECODE_CHUNK + 1] = enc(metric(1, ts="2019-03-01T12:00:00+02:00"))
    events, seqs, rejects = dec.decode_many(messages, 10)
    expected = one_by_one(dec, messages, 10)
    assert (events, seqs, rejects) == expected
    assert len(events) == 3 * DECODE_CHUNK and [s for s, _ in rejects] == [10 + DECODE_CHUNK + 7]
    assert all(type(e.ts) is float for e in events)


def test_chunk_with_invalid_utf8_in_a_skipped_field_falls_back() -> None:
    dec = EventDecoder({MODEL})
    messages = [enc(metric(i)) for i in range(5)]
    messages[3] = messages[3][:-1] + b',"junk":"\xff"}'
    events, seqs, rejects = dec.decode_many(messages, 0)
    assert (events, seqs, rejects) == one_by_one(dec, messages, 0)
    assert [(s, str(r.reason)) for s, r in rejects] == [(3, "invalid_utf8")]


def test_batch_message_fast_path_agrees_with_decode() -> None:
    dec = EventDecoder({MODEL}, max_event_bytes=300, max_message_bytes=100_000)
    elements = [enc(prediction(1)), enc(metric(2)), enc(metric(3, ts=1551441600.5))]
    batches = [
        b"[" + b",".join(elements) + b"]",
        b"[" + b", ".join(elements * 3) + b"]",  # longer than max_event_bytes, elements not
        b"[" + elements[0] + b"," + enc(metric(4, model_id="zz")) + b"]",
        b"[" + elements[1] + b"," + elements[1][:-1] + b',"junk":"\xff"}]',
        b"[" + elements[1] + b"," + enc(metric(5, note="x" * 300)) + b"]",
        b"[" + enc(prediction(6, score=1.5)) + b"]",
        b"[" + enc(metric(7, ts=-1.0)) + b"]",
        b"[]",
    ]
    for message in batches:
        events, rejects = dec.decode(message)
        many_events, seqs, many_rejects = dec.decode_many([message], 0)
        assert many_events == events
        assert [(r.reason, r.detail, r.index) for _, r in many_rejects] == [
            (r.reason, r.detail, r.index) for r in rejects]
        assert len(seqs) + len(many_rejects) == len(events) + len(rejects)


def test_dedupe_set_unpickled_forgets_in_the_same_order() -> None:
    d = DedupeSet(capacity=4)
    d.filter(["a", "b", "c", None, "a", "d", "e"])  # remembers b, c, d, e (a forgotten)
    r = pickle.loads(pickle.dumps(d))
    ids = ["e", "f", "c", "b"]  # f makes room by forgetting b, the oldest
    assert r.filter(list(ids)) == d.filter(list(ids)) == [True, False, True, False]
    assert pickle.loads(pickle.dumps(r)).__getstate__() == d.__getstate__()


def test_numeric_slice_labels_agree_with_label() -> None:
    dim = SliceDim("age", "feature", np.array([30.0, 50.0, 70.0]))
    for values in ([20.0, 30.0, 49.9, 50.0, 71.0], [20.0, None, "40", True, 55.0], []):
        assert dim.labels(values) == [dim.label(v) for v in values]


def test_the_core_gives_the_same_for_single_events_and_batch_messages(tmp_path: Path) -> None:
    scenario = generate("broken_pipeline", predictions=2_000, reference_size=1_000, seed=3)
    files = write_scenario(scenario, tmp_path / "s.jsonl")
    config = load_config(files.config)
    profiles = load_profiles(config)
    encoder = msgspec.json.Encoder()
    lines = [encoder.encode(ev) for ev in scenario.events]
    arrays = [encoder.encode(scenario.events[i:i + 50])
              for i in range(0, len(scenario.events), 50)]
    by_line, by_array = Core(config, profiles), Core(config, profiles)
    signals_by_line = [s for i in range(0, len(lines), 1000)
                       for s in by_line.process(lines[i:i + 1000]).signals]
    signals_by_array = [s for i in range(0, len(arrays), 20)
                        for s in by_array.process(arrays[i:i + 20]).signals]
    assert signals_by_line and signals_by_line == signals_by_array
    assert by_line.counters() == by_array.counters()
