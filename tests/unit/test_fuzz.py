"""Hostile input at the decoder and the core (hypothesis): every message is accepted or
rejected with a reason and its original bytes, the good events around the bad ones are all
counted, and nothing raises, whatever the bytes.

The mutations: invalid UTF-8, truncation, deep nesting (arrays and objects, 10 to 100,000
levels) anywhere, numbers huge, tiny, NaN/±Infinity and ``1e999``, long strings (past the
size limit too), the wrong type for every field, unknown fields, duplicate keys, SQL and
shell metacharacters, emoji and right-to-left text in ids and categories, times far in the
past and the future, batch messages (JSON arrays) that hold any of these.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.file import Config, load_config
from sim.scenarios import ScenarioFiles, generate, write_scenario
from stream.core import Core
from stream.events import Reason
from stream.reference import ModelProfile, load_profiles
from tests.figures import record

MODEL = "car_loan"
EXAMPLES = 300  # batches; each of 30 to 60 mutated messages: >= 10,000 in all

NASTY_TEXT = [
    "'; DROP TABLE alerts; --", "\" OR 1=1 --", "$(rm -rf /)", "`reboot`", "a|b&&c;d",
    "\u202etxet lanigiro", "\u05e9\u05dc\u05d5\u05dd", "\U0001f4a5\U0001f525", "\x00nul",
    "\\u0000", "%s%n%x", "../../etc/passwd", "\ud7ff\ue000", "tab\tnew\nline", "",
]
NASTY_NUMBERS = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e308", "-1e308",
                 "5e-324", "0", "-0", "123456789012345678901234567890",
                 "0.1e-99999", "9" * 400]
FAR_TIMES = ["0", "-62135596800", "253402300800", "1e20", "\"0001-01-01T00:00:00Z\"",
             "\"9999-12-31T23:59:59Z\"", "\"2019-02-30T00:00:00Z\"", "\"yesterday\"",
             "\"2019-03-01T00:00:00\"", "\"2019-03-01T00:00:00+99:00\""]


Setup = tuple[Config, dict[str, ModelProfile], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ScenarioFiles:
    scenario = generate("stationary", predictions=2_000, seed=3)
    return write_scenario(scenario, tmp_path_factory.mktemp("fuzz") / "s.jsonl")


@pytest.fixture(scope="module")
def setup(files: ScenarioFiles) -> Setup:
    config = load_config(files.config)
    bases = [json.loads(line) for line in files.events.read_text().splitlines()[:500]]
    return config, load_profiles(config), bases


def nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "array" else (
        '{"a":' * depth + "1" + "}" * depth)


@st.composite
def hostile(draw: st.DrawFn, bases: list[dict[str, Any]]) -> bytes:
    """One message: a real event, mutated (or several, as a batch), as bytes."""
    event = dict(draw(st.sampled_from(bases)))
    fields = sorted(event)
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    mutation = draw(st.sampled_from([
        "none", "wrong_type", "nasty_text", "number", "time", "unknown_field", "duplicate",
        "deep", "long_string", "truncate", "bad_utf8", "batch", "not_an_object", "feature",
        "event_type",
    ]))
    if mutation == "wrong_type":
        field = draw(st.sampled_from(fields))
        event[field] = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(),
                                      st.booleans(), st.none(), st.lists(st.integers(),
                                                                         max_size=3),
                                      st.dictionaries(st.text(max_size=3), st.integers(),
                                                      max_size=2)))
        text = json.dumps(event)
    elif mutation == "event_type":
        event["type"] = draw(st.sampled_from(["click", "", "Prediction", "PREDICTION",
                                              "prediction ", "outcome\u0000"]))
        text = json.dumps(event)
    elif mutation == "nasty_text":
        field = draw(st.sampled_from(["model_id", "event_id", "request_id", "model_version",
                                      "name"]))
        event[field] = draw(st.sampled_from(NASTY_TEXT))
        text = json.dumps(event, ensure_ascii=False)
    elif mutation == "feature":
        features = dict(event.get("features") or {})
        key = draw(st.sampled_from([*features, *NASTY_TEXT[:5]] or ["x"]))
        features[key] = draw(st.one_of(st.sampled_from(NASTY_TEXT), st.floats(),
                                       st.integers(min_value=-2**70, max_value=2**70),
                                       st.booleans(), st.none()))
        event["features"] = features
        text = json.dumps(event, ensure_ascii=False).replace("NaN", "NaN")
    elif mutation == "number":
        field = draw(st.sampled_from([f for f in ("score", "value", "prediction", "label")
                                      if f in event] or ["score"]))
        placeholder = "\"__n__\""
        event[field] = "__n__"
        text = json.dumps(event).replace(placeholder, draw(st.sampled_from(NASTY_NUMBERS)))
    elif mutation == "time":
        event["ts"] = "__t__"
        text = json.dumps(event).replace("\"__t__\"", draw(st.sampled_from(FAR_TIMES)))
    elif mutation == "unknown_field":
        event[draw(st.sampled_from(NASTY_TEXT))] = draw(st.integers())
        text = json.dumps(event, ensure_ascii=False)
    elif mutation == "duplicate":
        field = draw(st.sampled_from(fields))
        other = json.dumps(draw(st.one_of(st.integers(), st.text(max_size=5), st.none())))
        text = text[:-1] + f", {json.dumps(field)}: {other}}}"
    elif mutation == "deep":
        field = draw(st.sampled_from(fields))
        depth = draw(st.sampled_from([10, 100, 1_000, 5_000, 20_000, 100_000]))
        event[field] = "__d__"
        text = json.dumps(event).replace("\"__d__\"",
                                         nested(depth, draw(st.sampled_from(["array",
                                                                             "object"]))))
    elif mutation == "long_string":
        field = draw(st.sampled_from(["model_id", "event_id", "request_id"]))
        event[field] = "x" * draw(st.sampled_from([1_000, 70_000, 2_000_000]))
        text = json.dumps(event)
    elif mutation == "not_an_object":
        text = draw(st.sampled_from(["null", "1", "\"s\"", "[]", "[1, 2]", "true", "{}",
                                     "[[]]", "[{}]", "", " ", "{", "}",
                                     '{"type": "click", "ts": 1, "model_id": "car_loan"}']))
    raw = text.encode("utf-8", "surrogatepass")
    if mutation == "truncate" and len(raw) > 1:
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif mutation == "bad_utf8":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80",
                                               b"\xf8\x88\x80\x80\x80", b"\x80"])) + raw[at:]
    elif mutation == "batch":
        size = draw(st.integers(0, 5))
        parts: list[str] = [json.dumps(dict(draw(st.sampled_from(bases))))
                            for _ in range(size)]
        spoil: bool = draw(st.booleans())
        if parts and spoil:
            where: int = draw(st.integers(0, len(parts) - 1))
            parts[where] = draw(st.sampled_from(
                ["{\"type\": \"prediction\"}", "1", "null", nested(3_000, "array"),
                 "{\"type\": \"metric\", \"value\": NaN}"]))
        raw = ("[" + ", ".join(parts) + "]").encode()
    return raw


def test_any_bytes_are_accepted_or_rejected_with_a_reason_and_nothing_raises(
    setup: Setup,
) -> None:
    config, profiles, bases = setup
    tried = Counter[str]()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(messages=st.lists(hostile(bases), min_size=30, max_size=60))
    def batch_of(messages: list[bytes]) -> None:
        core = Core(config, profiles)
        good = [json.dumps({**b, "event_id": f"good-{k}"}).encode() for k, b in
                enumerate(bases[:5])]
        batch = [*good[:2], *messages, *good[2:]]
        result = core.process(batch)
        tried["messages"] += len(messages)
        # every event is counted once: accepted, duplicate or rejected
        assert core.processed == result.accepted + result.duplicates + len(result.rejects)
        assert result.accepted >= len(good)  # the good ones around the bad are all taken
        for _, reject in result.rejects:
            assert isinstance(reject.reason, Reason) and reject.detail
            assert reject.message is not None
            original = batch[reject.message]
            # the bytes kept are the message's own, or its element's (a batch message's)
            assert reject.raw == original or reject.raw in original
        # the next batch is processed as usual: nothing was left half-done
        after = core.process(good)
        assert after.duplicates == len(good) and not after.rejects

    batch_of()
    assert tried["messages"] >= 10_000, tried
    record("fuzz_core", mutated_messages=tried["messages"], batches=EXAMPLES)


def test_the_fuzzer_reaches_every_kind_of_rejection(setup: Setup) -> None:
    """The mutations are not all caught by one rule: the reasons they meet, pinned."""
    config, profiles, bases = setup
    reasons: Counter[str] = Counter()

    @settings(max_examples=1_000, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(message=hostile(bases))
    def one(message: bytes) -> None:
        core = Core(config, profiles)
        for _, reject in core.process([message]).rejects:
            reasons[str(reject.reason)] += 1

    one()
    # every reason but a monitor's failure, which only a bug reaches (test_monitor_failure)
    assert set(reasons) == {str(r) for r in Reason} - {"monitor_error"}, reasons


def test_deeply_nested_json_is_rejected_not_raised(setup: Setup) -> None:
    """One line of 5,000 nested arrays used to raise RecursionError out of the decoder and
    stop the whole replay (and, live, the worker). Now it is rejected as ``too_deep`` (or,
    past the size limit, ``oversize``), and the events around it count."""
    config, profiles, bases = setup
    core = Core(config, profiles)
    for depth, reason in ((5_000, Reason.TOO_DEEP), (100_000, Reason.OVERSIZE)):
        for kind in ("array", "object"):
            poison = ('{"type": "prediction", "features": ' + nested(depth, kind)
                      + "}").encode()
            bare = nested(depth, kind).encode()
            batch = [json.dumps({**bases[0], "event_id": f"a{depth}{kind}"}).encode(),
                     poison, bare,
                     json.dumps({**bases[1], "event_id": f"b{depth}{kind}"}).encode()]
            result = core.process(batch)
            assert result.accepted == 2
            (_, first), (_, second) = result.rejects
            assert (first.message, first.reason, first.raw) == (1, reason, batch[1])
            if kind == "array":  # a bare array is a batch message of one deep element
                assert (second.message, second.reason, second.index, second.raw) == (
                    2, reason, 0, bare[1:-1])
            else:
                assert (second.message, second.reason, second.index, second.raw) == (
                    2, reason, None, bare)


def test_replay_reads_a_hostile_file_to_its_end_and_accounts_for_every_event(
    setup: Setup, files: ScenarioFiles, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``watchkeeper replay`` over files of mutated lines between good ones: exit 0, every
    event accepted, a duplicate or rejected (and kept, with its bytes, in the database)."""
    _, _, bases = setup
    from watchkeeper.cli import main

    runs = Counter[str]()

    @settings(max_examples=4, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(messages=st.lists(hostile(bases), min_size=250, max_size=250))
    def replay_of(messages: list[bytes]) -> None:
        tmp = tmp_path_factory.mktemp("replay")
        good = [json.dumps({**b, "event_id": f"good-{k}"}).encode()
                for k, b in enumerate(bases[:100])]
        lines = [m for pair in zip(good, messages[:100], strict=True) for m in pair]
        lines += messages[100:]
        events = tmp / "hostile.jsonl"
        events.write_bytes(b"\n".join(lines) + b"\n")
        db, report = tmp / "wk.db", tmp / "report.json"
        kept_file = tmp / "rejects.jsonl"
        assert main(["replay", str(events), "--config", str(files.config), "--db", str(db),
                     "-q", "--report", str(report), "--rejects-out", str(kept_file)]) == 0
        body = json.loads(report.read_text())
        total = body["accepted"] + body["duplicates"] + body["rejected"]["total"]
        # written only when there are rejects
        kept_lines = kept_file.read_text().splitlines() if kept_file.exists() else []
        assert len(kept_lines) == body["rejected"]["total"]
        assert body["events_read"] == total and body["accepted"] >= len(good)
        with sqlite3.connect(db) as conn:
            (kept,) = conn.execute("SELECT count(*) FROM rejected_events").fetchone()
        assert kept == body["rejected"]["total"]
        runs["events"] += total

    replay_of()
    assert runs["events"] >= 1_000
