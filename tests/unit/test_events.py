"""Event decoding and validation (CONTRACT §1): one test per rejection reason, timestamps,
batches, numbering in ``decode_many`` and the bounded duplicate filter."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from stream.events import (
    DedupeSet,
    EventDecoder,
    Metric,
    Outcome,
    Prediction,
    Reason,
    Reject,
)

MODEL = "car_loan"
T0 = 1551441600.0  # 2019-03-01T12:00:00Z


def enc(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def prediction(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "prediction",
        "ts": "2019-03-01T12:00:00Z",
        "model_id": MODEL,
        "features": {"car_value": 39811.0, "salary_range": "40K - 60K €", "tenure": None},
        "prediction": 1,
    }
    ev.update(over)
    return ev


def outcome(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "outcome",
        "ts": "2019-03-01T12:00:00Z",
        "model_id": MODEL,
        "request_id": "r-1",
        "label": 0,
    }
    ev.update(over)
    return ev


def metric(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "metric",
        "ts": "2019-03-01T12:00:00Z",
        "model_id": MODEL,
        "name": "subscribed",
        "value": 1.0,
    }
    ev.update(over)
    return ev


def without(ev: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != key}


@pytest.fixture
def dec() -> EventDecoder:
    return EventDecoder({MODEL})


def rejected(dec: EventDecoder, message: bytes) -> Reject:
    """The single reject of ``message``; ``decode`` and ``decode_many`` must agree on it."""
    events, rejects = dec.decode(message)
    assert events == []
    assert len(rejects) == 1
    many_events, seqs, many_rejects = dec.decode_many([message], 40)
    assert many_events == [] and seqs == []
    assert len(many_rejects) == 1
    seq, many = many_rejects[0]
    assert seq == 40
    assert (many.reason, many.detail, many.raw) == (
        rejects[0].reason,
        rejects[0].detail,
        rejects[0].raw,
    )
    return rejects[0]


def accepted(dec: EventDecoder, message: bytes) -> Any:
    """The single event of ``message``, the same through ``decode`` and ``decode_many``."""
    events, rejects = dec.decode(message)
    assert rejects == []
    assert len(events) == 1
    many_events, seqs, many_rejects = dec.decode_many([message], 3)
    assert many_rejects == [] and seqs == [3]
    assert many_events == events
    return events[0]


# --- the good cases ------------------------------------------------------------------------


def test_prediction_decodes_to_typed_struct(dec: EventDecoder) -> None:
    ev = accepted(
        dec,
        enc(
            prediction(
                event_id="7f1c2d",
                model_version="v7",
                request_id="r-123",
                score=0.99,
                label=1,
                tags={"channel": "web"},
                features={"car_value": 39811, "salary_range": "40K - 60K €", "ok": True, "x": None},
            )
        ),
    )
    assert type(ev) is Prediction
    assert ev.ts == T0
    assert ev.model_id == MODEL
    assert ev.features == {
        "car_value": 39811.0,
        "salary_range": "40K - 60K €",
        "ok": True,
        "x": None,
    }
    assert type(ev.features["car_value"]) is float
    assert ev.prediction == 1
    assert (ev.event_id, ev.model_version, ev.request_id) == ("7f1c2d", "v7", "r-123")
    assert ev.score == 0.99 and ev.label == 1 and ev.tags == {"channel": "web"}


def test_outcome_and_metric_decode(dec: EventDecoder) -> None:
    out = accepted(dec, enc(outcome()))
    assert type(out) is Outcome
    assert (out.ts, out.request_id, out.label, out.event_id) == (T0, "r-1", 0, None)
    met = accepted(dec, enc(metric(model_version="v7", tags={"channel": "web"})))
    assert type(met) is Metric
    assert (met.ts, met.name, met.value, met.model_version) == (T0, "subscribed", 1.0, "v7")


def test_optional_fields_default_to_none(dec: EventDecoder) -> None:
    ev = accepted(dec, enc(prediction()))
    assert (ev.event_id, ev.model_version, ev.request_id, ev.score, ev.label, ev.tags) == (
        None,
        None,
        None,
        None,
        None,
        None,
    )


def test_unknown_extra_fields_are_ignored(dec: EventDecoder) -> None:
    ev = accepted(dec, enc(prediction(extra="x", nested={"a": [1, {"b": None}]}, n=1e10)))
    assert type(ev) is Prediction
    assert not hasattr(ev, "extra")
    assert accepted(dec, enc(outcome(comment="late"))).request_id == "r-1"


def test_leading_whitespace_is_accepted(dec: EventDecoder) -> None:
    assert type(accepted(dec, b"  " + enc(metric()))) is Metric


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "epoch"),
    [
        ("2019-03-01T12:00:00Z", T0),
        ("2019-03-01T12:00:00+02:00", T0 - 7200),
        ("2019-03-01T12:00:00-05:30", T0 + 5.5 * 3600),
        ("2019-03-01T12:00:00.250Z", T0 + 0.25),
        (1551441600, T0),
        (1551441600.5, T0 + 0.5),
        (0, 0.0),
    ],
)
def test_timestamps_become_epoch_seconds(dec: EventDecoder, ts: Any, epoch: float) -> None:
    ev = accepted(dec, enc(metric(ts=ts)))
    assert type(ev.ts) is float
    assert ev.ts == epoch


def test_naive_iso_timestamp_is_rejected(dec: EventDecoder) -> None:
    r = rejected(dec, enc(metric(ts="2019-03-01T12:00:00")))
    assert r.reason is Reason.WRONG_TYPE
    assert r.detail == "Expected `datetime` with a timezone component - at `$.ts`"


@pytest.mark.parametrize("ts", ["yesterday", "1551441600", "2019-13-01T00:00:00Z"])
def test_unparseable_timestamp_string_is_wrong_type(dec: EventDecoder, ts: str) -> None:
    r = rejected(dec, enc(metric(ts=ts)))
    assert r.reason is Reason.WRONG_TYPE
    assert r.detail.endswith("- at `$.ts`")


@pytest.mark.parametrize("ts", [True, None, [1]])
def test_timestamp_of_wrong_json_type(dec: EventDecoder, ts: Any) -> None:
    r = rejected(dec, enc(metric(ts=ts)))
    assert r.reason is Reason.WRONG_TYPE
    assert "`$.ts`" in r.detail


# --- one test per rejection reason ---------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [b'{"type": "prediction",', b"{'type': 'metric'}", b"not json", b"", b"   ", b"{,}"],
)
def test_invalid_json(dec: EventDecoder, message: bytes) -> None:
    r = rejected(dec, message)
    assert r.reason is Reason.INVALID_JSON
    assert r.raw == message
    assert r.index is None


def test_invalid_json_trailing_garbage(dec: EventDecoder) -> None:
    message = enc(metric()) + b" x"
    r = rejected(dec, message)
    assert r.reason is Reason.INVALID_JSON
    assert r.detail.startswith("JSON is malformed: trailing characters")


@pytest.mark.parametrize("message", [b"{}}", b'{"type": "x"} garbage'])
def test_invalid_json_trailing_garbage_after_invalid_event(
    dec: EventDecoder, message: bytes
) -> None:
    assert rejected(dec, message).reason is Reason.INVALID_JSON


@pytest.mark.parametrize(
    ("message", "at"),
    [(b"\xff", 0), (b"\xff\xfe", 0), (b"\xff{}", 0), (b"{\xff}", 1), (b"[\xff]", 1)],
)
def test_invalid_utf8_whole_message(dec: EventDecoder, message: bytes, at: int) -> None:
    r = rejected(dec, message)
    assert r.reason is Reason.INVALID_UTF8
    assert r.detail == f"invalid UTF-8 at byte {at}"
    assert r.raw == message


@pytest.mark.parametrize(
    "message",
    [
        enc(outcome()).replace(b'"r-1"', b'"r-\xff"'),
        enc(metric()).replace(b'"subscribed"', b'"subscribed\xed\xa0\x80"'),
        enc(prediction()).replace(b'"car_value"', b'"car\xff_value"'),
    ],
    ids=["string-value", "surrogate", "feature-key"],
)
def test_invalid_utf8_inside_a_string(dec: EventDecoder, message: bytes) -> None:
    r = rejected(dec, message)
    assert r.reason is Reason.INVALID_UTF8
    assert r.raw == message


def test_invalid_utf8_inside_a_batch_element(dec: EventDecoder) -> None:
    bad = enc(outcome()).replace(b'"r-1"', b'"r-\xff"')
    events, rejects = dec.decode(b"[" + enc(metric()) + b"," + bad + b"]")
    assert [type(e) for e in events] == [Metric]
    assert [(r.reason, r.index, r.raw) for r in rejects] == [(Reason.INVALID_UTF8, 1, bad)]


@pytest.mark.parametrize(
    ("message", "got"), [(b"42", "int"), (b'"hello"', "str"), (b"null", "null")]
)
def test_not_object_single_message(dec: EventDecoder, message: bytes, got: str) -> None:
    r = rejected(dec, message)
    assert r.reason is Reason.NOT_OBJECT
    assert r.detail == f"Expected `object`, got `{got}`"
    assert r.index is None


def test_not_object_batch_element(dec: EventDecoder) -> None:
    events, rejects = dec.decode(b'[7, "s", [1], ' + enc(metric()) + b"]")
    assert [type(e) for e in events] == [Metric]
    assert [(r.reason, r.index, r.raw) for r in rejects] == [
        (Reason.NOT_OBJECT, 0, b"7"),
        (Reason.NOT_OBJECT, 1, b'"s"'),
        (Reason.NOT_OBJECT, 2, b"[1]"),
    ]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (without(outcome(), "model_id"), "model_id"),
        (without(metric(), "ts"), "ts"),
        (without(prediction(), "features"), "features"),
        (without(prediction(), "prediction"), "prediction"),
        (without(outcome(), "request_id"), "request_id"),
        (without(outcome(), "label"), "label"),
        (without(metric(), "name"), "name"),
        (without(metric(), "value"), "value"),
        (without(outcome(), "type"), "type"),
    ],
)
def test_missing_field(dec: EventDecoder, event: dict[str, Any], field: str) -> None:
    r = rejected(dec, enc(event))
    assert r.reason is Reason.MISSING_FIELD
    assert r.detail == f"Object missing required field `{field}`"


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        (outcome(model_id=5), "Expected `str`, got `int` - at `$.model_id`"),
        (prediction(features=[1, 2]), "Expected `object`, got `array` - at `$.features`"),
        (prediction(features="a=1"), "Expected `object`, got `str` - at `$.features`"),
        (
            prediction(features={"a": [1]}),
            "Expected `bool | float | str | null`, got `array` - at `$.features[...]`",
        ),
        (
            prediction(features={"a": {"b": 1}}),
            "Expected `bool | float | str | null`, got `object` - at `$.features[...]`",
        ),
        (
            prediction(prediction=None),
            "Expected `bool | float | str`, got `null` - at `$.prediction`",
        ),
        (outcome(label=[1]), "Expected `bool | float | str`, got `array` - at `$.label`"),
        (metric(value="1"), "Expected `float`, got `str` - at `$.value`"),
        (metric(event_id=5), "Expected `str | null`, got `int` - at `$.event_id`"),
        (
            metric(tags={"a": [1]}),
            "Expected `bool | float | str | null`, got `array` - at `$.tags[...]`",
        ),
        (prediction(score="high"), "Expected `float | null`, got `str` - at `$.score`"),
        (outcome(type=1), "Expected `str` - at `$.type`"),
    ],
)
def test_wrong_type(dec: EventDecoder, event: dict[str, Any], detail: str) -> None:
    r = rejected(dec, enc(event))
    assert r.reason is Reason.WRONG_TYPE
    assert r.detail == detail


@pytest.mark.parametrize("kind", ["x", "Prediction", "predictions", ""])
def test_unknown_event_type(dec: EventDecoder, kind: str) -> None:
    r = rejected(dec, enc(metric(type=kind)))
    assert r.reason is Reason.UNKNOWN_EVENT_TYPE
    assert r.detail == f"Invalid value {kind!r} - at `$.type`"


@pytest.mark.parametrize("make", [prediction, outcome, metric])
def test_unknown_model(dec: EventDecoder, make: Any) -> None:
    message = enc(make(model_id="other_model"))
    r = rejected(dec, message)
    assert r.reason is Reason.UNKNOWN_MODEL
    assert r.detail == "unknown model 'other_model'"
    assert r.raw == message


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("where", ["value", "feature", "score"])
def test_non_finite_tokens(dec: EventDecoder, token: bytes, where: str) -> None:
    if where == "value":
        message = enc(metric(value=123456)).replace(b"123456", token)
    elif where == "feature":
        message = enc(prediction(features={"a": 123456})).replace(b"123456", token)
    else:
        message = enc(prediction(score=0.123456)).replace(b"0.123456", token)
    r = rejected(dec, message)
    assert r.reason is Reason.NON_FINITE
    assert r.detail == "NaN or Infinity where a number is required"


@pytest.mark.parametrize(
    ("message", "at"),
    [
        (enc(metric(value=123456)).replace(b"123456", b"1e999"), "$.value"),
        (enc(prediction(features={"a": 123456})).replace(b"123456", b"1e999"), "$.features[...]"),
        (enc(prediction(features={"a": 123456})).replace(b"123456", b"-1e999"), "$.features[...]"),
        (enc(prediction(prediction=123456)).replace(b"123456", b"1e999"), "$.prediction"),
        (enc(metric(ts=123456)).replace(b"123456", b"1e999"), "$.ts"),
    ],
)
def test_non_finite_huge_numbers(dec: EventDecoder, message: bytes, at: str) -> None:
    r = rejected(dec, message)
    assert r.reason is Reason.NON_FINITE
    assert r.detail == f"Number out of range - at `{at}`"


def sized(n: int) -> bytes:
    """A valid metric event of exactly ``n`` bytes."""
    base = enc(metric(name=""))
    message = enc(metric(name="x" * (n - len(base))))
    assert len(message) == n
    return message


def test_oversize_event() -> None:
    dec = EventDecoder({MODEL}, max_event_bytes=300)
    assert type(accepted(dec, sized(300))) is Metric
    message = sized(301)
    r = rejected(dec, message)
    assert r.reason is Reason.OVERSIZE
    assert r.detail == "event of 301 bytes exceeds 300"
    assert r.raw == message


def test_oversize_default_limit_is_64_kib(dec: EventDecoder) -> None:
    assert type(accepted(dec, sized(65536))) is Metric
    big = enc(prediction(features={"note": "x" * 100_000}))
    r = rejected(dec, big)
    assert r.reason is Reason.OVERSIZE
    assert r.detail == f"event of {len(big)} bytes exceeds 65536"
    assert r.raw == big  # kept whole (up to max_message_bytes), so it can be re-processed


def test_oversize_batch() -> None:
    dec = EventDecoder({MODEL}, max_event_bytes=300, max_message_bytes=600)
    one = enc(metric())
    ok = b"[" + b",".join([one] * 2) + b"]"
    assert len(ok) <= 600
    events, rejects = dec.decode(ok)
    assert len(events) == 2 and rejects == []
    big = b"[" + b",".join([one] * 12) + b"]"
    assert len(big) > 600
    events, rejects = dec.decode(big)
    assert events == []
    assert [(r.reason, r.detail, r.index) for r in rejects] == [
        (Reason.OVERSIZE, f"batch of {len(big)} bytes exceeds 600", None)
    ]
    _, seqs, many = dec.decode_many([big, one], 0)
    assert seqs == [1]
    assert [(s, r.reason) for s, r in many] == [(0, Reason.OVERSIZE)]


def test_oversize_batch_element() -> None:
    dec = EventDecoder({MODEL}, max_event_bytes=300, max_message_bytes=10_000)
    big = sized(400)
    events, rejects = dec.decode(b"[" + enc(metric()) + b"," + big + b"]")
    assert [type(e) for e in events] == [Metric]
    assert [(r.reason, r.detail, r.index) for r in rejects] == [
        (Reason.OVERSIZE, "event of 400 bytes exceeds 300", 1)
    ]


@pytest.mark.parametrize("score", [1.5, -0.1, 1.0000001])
def test_invalid_value_score(dec: EventDecoder, score: float) -> None:
    r = rejected(dec, enc(prediction(score=score)))
    assert r.reason is Reason.INVALID_VALUE
    assert r.detail == f"score {score!r} outside [0, 1]"


@pytest.mark.parametrize("score", [0.0, 1.0, 0.5])
def test_score_bounds_are_inclusive(dec: EventDecoder, score: float) -> None:
    assert accepted(dec, enc(prediction(score=score))).score == score


@pytest.mark.parametrize(("ts", "shown"), [(-5, "-5.0"), (-0.5, "-0.5"), (1e12, "1000000000000.0")])
def test_invalid_value_epoch_timestamp(dec: EventDecoder, ts: float, shown: str) -> None:
    r = rejected(dec, enc(metric(ts=ts)))
    assert r.reason is Reason.INVALID_VALUE
    assert r.detail == f"epoch timestamp {shown} out of range"


@pytest.mark.parametrize("ts", ["1960-01-01T00:00:00Z", "3001-01-01T00:00:00Z"])
def test_invalid_value_iso_timestamp_out_of_range(dec: EventDecoder, ts: str) -> None:
    r = rejected(dec, enc(metric(ts=ts)))
    assert r.reason is Reason.INVALID_VALUE


def test_every_reason_is_covered() -> None:
    assert {str(r) for r in Reason} == {
        "invalid_json",
        "invalid_utf8",
        "not_object",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "unknown_event_type",
        "unknown_model",
        "non_finite",
        "oversize",
        "too_deep",
        "monitor_error",
    }


# --- batches and numbering -----------------------------------------------------------------


def test_batch_elements_are_validated_on_their_own(dec: EventDecoder) -> None:
    elements = [
        enc(metric(event_id="a")),
        b"7",
        enc({"type": "outcome"}),
        enc(prediction(event_id="b")),
        enc(metric(model_id="zz")),
        enc(outcome(event_id="c")),
        enc(metric(ts=-1)),
        enc(metric(value=123456)).replace(b"123456", b"1e999"),
    ]
    message = b"[" + b", ".join(elements) + b"]"
    events, rejects = dec.decode(message)
    assert [e.event_id for e in events] == ["a", "b", "c"]
    assert [(str(r.reason), r.index, r.raw) for r in rejects] == [
        ("not_object", 1, b"7"),
        ("missing_field", 2, elements[2]),
        ("unknown_model", 4, elements[4]),
        ("invalid_value", 6, elements[6]),
        ("non_finite", 7, elements[7]),
    ]


def test_decode_many_numbers_every_element_in_order(dec: EventDecoder) -> None:
    batch = b"[" + b",".join([enc(metric(event_id="b0")), b"7", enc(metric(event_id="b2"))]) + b"]"
    messages = [
        enc(metric(event_id="m0")),  # 100
        b"not json",  # 101
        batch,  # 102, 103 (reject), 104
        enc(metric(event_id="m3", ts=1551441600)),  # 105: epoch ts takes the checked path
        enc(metric(model_id="zz")),  # 106
        b"  " + enc(outcome(event_id="m5")),  # 107
        b"[]",  # an empty batch holds no event
        b"[1, 2]",  # 108, 109
        enc(prediction(event_id="m8", score=0.5)),  # 110
        enc(prediction(score=2.0)),  # 111
    ]
    events, seqs, rejects = dec.decode_many(messages, 100)
    assert [e.event_id for e in events] == ["m0", "b0", "b2", "m3", "m5", "m8"]
    assert seqs == [100, 102, 104, 105, 107, 110]
    assert [(s, str(r.reason), r.index) for s, r in rejects] == [
        (101, "invalid_json", None),
        (103, "not_object", 1),
        (106, "unknown_model", None),
        (108, "not_object", 0),
        (109, "not_object", 1),
        (111, "invalid_value", None),
    ]
    assert all(type(e.ts) is float for e in events)
    assert events[3].ts == T0


def test_decode_many_batch_rejected_as_a_whole_takes_one_index(dec: EventDecoder) -> None:
    messages = [enc(metric()), b'[{"type": "metric",', enc(metric())]
    _, seqs, rejects = dec.decode_many(messages, 0)
    assert seqs == [0, 2]
    assert [(s, r.reason, r.index) for s, r in rejects] == [(1, Reason.INVALID_JSON, None)]


def test_decode_many_empty(dec: EventDecoder) -> None:
    assert dec.decode_many([], 5) == ([], [], [])


def test_non_finite_in_one_batch_element(dec: EventDecoder) -> None:
    nan = enc(metric(value=123456)).replace(b"123456", b"NaN")
    message = (
        b"[" + enc(metric(event_id="a")) + b"," + nan + b"," + enc(metric(event_id="c")) + b"]"
    )
    events, rejects = dec.decode(message)
    assert [e.event_id for e in events] == ["a", "c"]
    assert [(r.reason, r.index, r.raw) for r in rejects] == [(Reason.NON_FINITE, 1, nan)]
    _, seqs, many = dec.decode_many([message], 0)
    assert seqs == [0, 2]
    assert [(s, r.reason) for s, r in many] == [(1, Reason.NON_FINITE)]


def test_decode_many_agrees_with_decode(dec: EventDecoder) -> None:
    messages = [
        enc(prediction(event_id="p", request_id="r", score=0.3)),
        enc(outcome(event_id="o", ts=1551441600.25)),
        enc(metric(event_id="m", ts="2019-03-01T14:00:00+02:00")),
    ]
    events, seqs, rejects = dec.decode_many(messages, 0)
    assert rejects == [] and seqs == [0, 1, 2]
    one_by_one = [dec.decode(m)[0][0] for m in messages]
    assert events == one_by_one
    assert [e.ts for e in events] == [T0, T0 + 0.25, T0]


# --- duplicates ----------------------------------------------------------------------------


def test_dedupe_set_is_a_bounded_fifo() -> None:
    d = DedupeSet(capacity=2)
    assert [d.seen(x) for x in ["a", "b", "a", "c", "a", "b", "c"]] == [
        False,  # {a}
        False,  # {a, b}
        True,  # a again: no refresh (FIFO, not LRU)
        False,  # {b, c}: a is forgotten
        False,  # {c, a}
        False,  # {a, b}
        False,  # {b, c}
    ]
    assert len(d) == 2


def test_dedupe_set_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        DedupeSet(0)


def test_dedupe_filter() -> None:
    d = DedupeSet(capacity=10)
    assert d.filter(["a", None, "a", "b", None]) == [False, False, True, False, False]
    assert d.filter(["b", "c", "a", None]) == [True, False, True, False]
    assert len(d) == 3
    assert d.seen("c") is True
    assert d.filter([]) == []


def test_dedupe_filter_stays_bounded() -> None:
    d = DedupeSet(capacity=3)
    d.filter([f"id{i}" for i in range(10)])
    assert len(d) == 3
    assert d.filter(["id9", "id8", "id7", "id6"]) == [True, True, True, False]


def test_dedupe_filter_matches_seen_one_by_one() -> None:
    ids = ["a", "b", "c", "a"]
    one_by_one = DedupeSet(capacity=2)
    expected = [one_by_one.seen(x) for x in ids]
    assert expected == [False, False, False, False]
    assert DedupeSet(capacity=2).filter(list(ids)) == expected


# --- NUL characters ------------------------------------------------------------------------


@pytest.mark.parametrize("event", [
    prediction(model_version="v1\u0000"),
    prediction(request_id="\u0000"),
    prediction(features={"car\u0000value": 1.0, "salary_range": "40K\u0000"}),
    prediction(tags={"channel": "web\u0000"}),
    outcome(request_id="r\u0000"),
    metric(name="sub\u0000scribed"),
])
def test_a_nul_character_in_a_text_field_is_taken_as_it_is(
    dec: EventDecoder, event: dict[str, Any],
) -> None:
    """JSON may carry one (``\\u0000``): the event is taken, the NUL kept; the store writes
    it out where PostgreSQL's text cannot hold it (tests/integration/test_postgres_store)."""
    events, rejects = dec.decode(enc(event))
    assert rejects == [] and len(events) == 1
    assert "\\u0000" in json.dumps(msgspec.to_builtins(events[0]))
