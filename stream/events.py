"""Events (CONTRACT §1): typed records, decoding and validation with a reason per rejection.

Decoding is the hot path, so the common case costs one msgspec decode into typed structs;
only a message that fails takes the slow path that works out *why* it failed. A message is
one event (a JSON object) or a batch (a JSON array of events), each element validated on
its own.

>>> dec = EventDecoder({"car_loan"})
>>> good = b'{"type":"outcome","ts":"2019-03-01T12:00:00Z","model_id":"car_loan",'
>>> good += b'"request_id":"r-1","label":1}'
>>> events, rejects = dec.decode(good)
>>> events[0].request_id, events[0].ts
('r-1', 1551441600.0)
>>> _, rejects = dec.decode(b'[{"type":"outcome"}, 7, {"type":"x"}]')
>>> [str(r.reason) for r in rejects]
['missing_field', 'not_object', 'unknown_event_type']
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from itertools import filterfalse
from operator import methodcaller
from typing import Annotated, Any

import msgspec

Scalar = float | str | bool | None
Label = float | str | bool
# ISO-8601 with a zone (naive times are refused: event time must be unambiguous) or epoch s.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)] | float

MIN_EPOCH = 0.0  # 1970-01-01
MAX_EPOCH = 32503680000.0  # 3000-01-01
# decode_many checks single-event messages this many at a time, while they are in the cache
DECODE_CHUNK = 256


class Reason(StrEnum):
    """Why a message or an element of a batch was rejected."""

    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_MODEL = "unknown_model"
    NON_FINITE = "non_finite"
    OVERSIZE = "oversize"
    TOO_DEEP = "too_deep"  # nested deeper than the decoder goes (it would overflow the stack)
    MONITOR_ERROR = "monitor_error"  # a monitor failed on it (a bug): the rest went on


class Prediction(msgspec.Struct, tag="prediction", tag_field="type", gc=False):
    """A model's prediction for one request, with the features it saw."""

    ts: Timestamp
    model_id: str
    features: dict[str, Scalar]
    prediction: Label
    event_id: str | None = None
    model_version: str | None = None
    request_id: str | None = None
    score: float | None = None
    label: Label | None = None
    tags: dict[str, Scalar] | None = None


class Outcome(msgspec.Struct, tag="outcome", tag_field="type", gc=False):
    """The ground truth for an earlier prediction, joined by ``request_id``."""

    ts: Timestamp
    model_id: str
    request_id: str
    label: Label
    event_id: str | None = None


class Metric(msgspec.Struct, tag="metric", tag_field="type", gc=False):
    """One observation of a business/product metric."""

    ts: Timestamp
    model_id: str
    name: str
    value: float
    event_id: str | None = None
    model_version: str | None = None
    tags: dict[str, Scalar] | None = None


Event = Prediction | Outcome | Metric
EVENT_TYPES: dict[str, type[Event]] = {
    "prediction": Prediction,
    "outcome": Outcome,
    "metric": Metric,
}


@dataclass(frozen=True, slots=True)
class Reject:
    """A rejected message (or batch element): kept with its reason, never fatal."""

    reason: Reason
    detail: str
    raw: bytes
    index: int | None = None  # position inside a batch message, None for a single event
    message: int | None = None  # position of its message in the batch given to decode_many


class DedupeSet:
    """Remembers the last ``capacity`` event ids (FIFO); O(1) per check, bounded memory.
    ``forgotten`` counts the ids pushed out (a copy of one of them would be taken again).

    >>> d = DedupeSet(capacity=2)
    >>> [d.seen(x) for x in ["a", "b", "a", "c", "a"]], len(d), d.forgotten
    ([False, False, True, False, False], 2, 2)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: dict[str, None] = {}  # for lookups
        self._order: deque[str] = deque()  # the same ids, oldest first, for evictions
        self.forgotten = 0

    def seen(self, event_id: str) -> bool:
        """True when ``event_id`` was seen before (and is still remembered); else remember it."""
        return self.filter([event_id])[0]

    def __len__(self) -> int:
        return len(self._ids)

    def state(self) -> dict[str, Any]:
        """The ids remembered, oldest first (plain data for a checkpoint).

        >>> d = DedupeSet(3); _ = [d.seen(x) for x in "abcd"]
        >>> r = DedupeSet(3); r.restore(d.state()); r.seen("b"), r.seen("a"), r.forgotten
        (True, False, 2)
        """
        return {"ids": list(self._order), "forgotten": self.forgotten}

    def restore(self, state: dict[str, Any]) -> None:
        """Remember ``state``'s ids; only the newest ``capacity`` if it is smaller now (the
        others count as forgotten)."""
        ids = [str(i) for i in state["ids"]]
        self._ids = dict.fromkeys(ids[-self.capacity:])
        self._order = deque(self._ids)
        self.forgotten = int(state.get("forgotten", 0)) + max(len(ids) - self.capacity, 0)

    def filter(self, ids: list[str | None]) -> list[bool]:
        """For a batch: True for each id already seen (None ids are never duplicates).

        >>> DedupeSet(10).filter(["a", None, "a", "b", None])
        [False, False, True, False, False]
        """
        known = self._ids
        order = self._order
        capacity = self.capacity
        before = len(known)
        added = 0
        out = []
        for eid in ids:
            if eid is None:
                out.append(False)
            elif eid in known:
                out.append(True)
            else:
                known[eid] = None
                order.append(eid)
                added += 1
                if len(known) > capacity:
                    del known[order.popleft()]
                out.append(False)
        self.forgotten += before + added - len(known)
        return out


_isascii = methodcaller("isascii")


def _is_utf8(data: bytes) -> bool:
    """True if ``data`` is valid UTF-8 (msgspec does not check the fields it skips)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _classify_validation(msg: str) -> Reason:
    if msg.startswith("Object missing required field"):
        return Reason.MISSING_FIELD
    if msg.startswith("Number out of range"):
        return Reason.NON_FINITE
    if msg.startswith("Invalid value") and "`$.type`" in msg:
        return Reason.UNKNOWN_EVENT_TYPE
    if msg.startswith("Expected `object") and "- at" not in msg:
        return Reason.NOT_OBJECT
    return Reason.WRONG_TYPE


def _has_non_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_non_finite(v) for v in obj)
    return False


class EventDecoder:
    """Decodes messages into typed events for the known models; pure, no I/O.

    ``decode`` returns ``(events, rejects)``; duplicates are not its concern (see
    :class:`DedupeSet`), so that the same decoder serves any driver.
    """

    def __init__(
        self,
        models: Collection[str],
        *,
        max_event_bytes: int = 64 * 1024,
        max_message_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.models = frozenset(models)
        self.max_event_bytes = max_event_bytes
        self.max_message_bytes = max_message_bytes
        self._event = msgspec.json.Decoder(Event)
        self._events = msgspec.json.Decoder(list[Event])
        self._batch = msgspec.json.Decoder(list[msgspec.Raw])

    def decode(self, message: bytes) -> tuple[list[Event], list[Reject]]:
        """Decode one message: a JSON object or a JSON array of them."""
        events: list[Event] = []
        rejects: list[Reject] = []
        if message.lstrip()[:1] != b"[":
            self._one(message, None, events, rejects)
            return events, rejects
        if len(message) > self.max_message_bytes:
            rejects.append(Reject(Reason.OVERSIZE, f"batch of {len(message)} bytes exceeds "
                                  f"{self.max_message_bytes}", _kept(message, self)))
            return events, rejects
        try:
            elements = [bytes(raw) for raw in self._batch.decode(message)]
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError,
                RecursionError):
            reject = self._explain(message, None)
            spans = (_split_array(message)
                     if reject.reason in (Reason.NON_FINITE, Reason.TOO_DEEP) else None)
            if spans is None:
                rejects.append(reject)
                return events, rejects
            # a NaN/Infinity or deep nesting in some elements: each is validated on its own
            elements = spans
        for i, raw in enumerate(elements):
            self._one(raw, i, events, rejects)
        return events, rejects

    def decode_many(
        self, messages: Iterable[bytes], start: int
    ) -> tuple[list[Event], list[int], list[tuple[int, Reject]]]:
        """Decode a batch of messages, numbering every element from ``start`` in order.

        Returns the events with their indices, and the rejects with theirs. The common
        cases take fast paths: single-event messages are decoded and checked
        ``DECODE_CHUNK`` at a time when all of them are valid, and so is each batch message
        (JSON array) whose elements are all valid; any other message is examined on its
        own.
        """
        batch = messages if isinstance(messages, list) else list(messages)
        events: list[Event] = []
        seqs: list[int] = []
        rejected: list[tuple[int, Reject]] = []
        seq = start
        for first in range(0, len(batch), DECODE_CHUNK):
            chunk = batch[first:first + DECODE_CHUNK]
            valid = self._valid_events(chunk)
            if valid is None:
                seq = self._each(chunk, first, seq, events, seqs, rejected)
            else:
                events += valid
                seqs += range(seq, seq + len(valid))
                seq += len(valid)
        return events, seqs, rejected

    def _each(self, messages: list[bytes], first: int, seq: int, events: list[Event],
              seqs: list[int], rejected: list[tuple[int, Reject]]) -> int:
        """:meth:`decode_many` message by message (``first``: the position of the first);
        returns the index of the next event."""
        fast = self._event.decode
        broken = self._broken
        limit = self.max_event_bytes
        for position, message in enumerate(messages, first):
            head = message[:1]
            if head == b"{" and len(message) <= limit:
                try:
                    if not message.isascii():
                        message.decode("utf-8")  # msgspec does not check skipped fields
                    ev = fast(message)
                except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError,
                        RecursionError):
                    pass
                else:
                    if broken(ev) is None:
                        events.append(ev)
                        seqs.append(seq)
                        seq += 1
                        continue
            elif head == b"[":
                valid = self._valid_batch(message)
                if valid is not None:
                    events.extend(valid)
                    seqs.extend(range(seq, seq + len(valid)))
                    seq += len(valid)
                    continue
            evs, rejects = self.decode(message)
            if not rejects:
                events.extend(evs)
                seqs.extend(range(seq, seq + len(evs)))
                seq += len(evs)
                continue
            at = {r.index if r.index is not None else 0: r for r in rejects}
            it = iter(evs)
            for pos in range(len(evs) + len(rejects)):
                reject = at.get(pos)
                if reject is not None:
                    rejected.append((seq, replace(reject, message=position)))
                else:
                    events.append(next(it))
                    seqs.append(seq)
                seq += 1
        return seq

    def _valid_events(self, messages: list[bytes]) -> list[Event] | None:
        """The events of ``messages`` if every one is a single valid event, else None.

        Valid means what :meth:`decode` would accept without a reject: within the size
        limit, UTF-8, decodable, and keeping the rules (:meth:`_broken`).
        """
        if not messages or max(map(len, messages)) > self.max_event_bytes:
            return None
        try:
            events = list(map(self._event.decode, messages))
            for message in filterfalse(_isascii, messages):
                message.decode("utf-8")  # msgspec does not check the fields it skips
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError,
                RecursionError):
            return None  # a batch message, or one that fails: each is examined on its own
        return events if self._accept(events) else None

    def _valid_batch(self, message: bytes) -> list[Event] | None:
        """The events of a batch message (a JSON array) if every element is a valid event
        (as :meth:`_valid_events` means it), else None."""
        if len(message) > self.max_message_bytes or not _is_utf8(message):
            return None
        try:
            events = self._events.decode(message)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError,
                RecursionError):
            return None
        limit = self.max_event_bytes
        if len(message) > limit and max(map(len, self._batch.decode(message)),
                                        default=0) > limit:
            return None
        return events if self._accept(events) else None

    def _accept(self, events: list[Event]) -> bool:
        """True if every event keeps the rules (:meth:`_broken`)."""
        broken = self._broken
        return all(broken(ev) is None for ev in events)

    def _one(
        self, raw: bytes, index: int | None, events: list[Event], rejects: list[Reject]
    ) -> None:
        if len(raw) > self.max_event_bytes:
            detail = f"event of {len(raw)} bytes exceeds {self.max_event_bytes}"
            rejects.append(Reject(Reason.OVERSIZE, detail, _kept(raw, self), index))
            return
        if not raw.isascii():
            try:
                raw.decode("utf-8")  # msgspec does not check the fields it skips
            except UnicodeDecodeError:
                rejects.append(self._explain(raw, index))
                return
        try:
            ev = self._event.decode(raw)
        except msgspec.ValidationError as exc:
            try:  # a validation error can hide malformed JSON later in the message
                msgspec.json.decode(raw)
            except msgspec.DecodeError as bad:
                if not str(bad).startswith("Number out of range"):
                    rejects.append(self._explain(raw, index))
                    return
            except RecursionError:
                rejects.append(_too_deep(raw, index))
                return
            msg = str(exc)
            rejects.append(Reject(_classify_validation(msg), msg, raw, index))
            return
        except (msgspec.DecodeError, UnicodeDecodeError):
            rejects.append(self._explain(raw, index))
            return
        except RecursionError:
            rejects.append(_too_deep(raw, index))
            return
        reason = self._broken(ev)
        if reason is not None:
            rejects.append(Reject(reason[0], reason[1], raw, index))
            return
        events.append(ev)

    def _broken(self, ev: Event) -> tuple[Reason, str] | None:
        """The rules a decoded event must keep, written once (every path calls this): a
        configured model, a time within range (made epoch seconds here), a score in
        [0, 1]. None when it keeps them all; else the first it breaks, and why."""
        if ev.model_id not in self.models:
            return Reason.UNKNOWN_MODEL, f"unknown model {ev.model_id!r}"
        ts = ev.ts.timestamp() if isinstance(ev.ts, datetime) else ev.ts
        if not MIN_EPOCH <= ts <= MAX_EPOCH:
            return Reason.INVALID_VALUE, f"epoch timestamp {ts!r} out of range"
        if type(ev) is Prediction and ev.score is not None and not 0.0 <= ev.score <= 1.0:
            return Reason.INVALID_VALUE, f"score {ev.score!r} outside [0, 1]"
        ev.ts = ts
        return None

    @staticmethod
    def _explain(raw: bytes, index: int | None) -> Reject:
        """Slow path: why did this message not decode?"""
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Reject(Reason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}", raw, index)
        try:
            msgspec.json.decode(raw)
        except RecursionError:
            return _too_deep(raw, index)
        except msgspec.DecodeError as exc:
            loose = _loose(raw)
            if loose is not _INVALID and _has_non_finite(loose):
                return Reject(Reason.NON_FINITE, "NaN or Infinity where a number is required",
                              raw, index)
            return Reject(Reason.INVALID_JSON, str(exc), raw, index)
        return Reject(Reason.INVALID_JSON, "undecodable message", raw, index)


_INVALID = object()
def _loose(raw: bytes) -> Any:
    """Python's json, which accepts NaN/Infinity; ``_INVALID`` if even that fails."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _INVALID


def _too_deep(raw: bytes, index: int | None) -> Reject:
    return Reject(Reason.TOO_DEEP, "JSON nested too deeply to decode", raw, index)


_OPEN, _CLOSE, _QUOTE, _ESCAPE, _COMMA = frozenset(b"[{"), frozenset(b"]}"), 34, 92, 44
_SPACE = frozenset(b" \t\r\n")


def _split_array(message: bytes) -> list[bytes] | None:
    """The exact bytes of each element of a top-level JSON array, found by scanning the
    brackets and strings without parsing the elements (so at any depth, with NaN inside);
    None if it is not such an array. Each element is then validated on its own. (Our own
    scanner: msgspec and the json module both recurse, and give up on deep nesting.)

    >>> _split_array(b'[{"a": 1}, {"b": NaN} ]')
    [b'{"a": 1}', b'{"b": NaN}']
    >>> _split_array(b'[[[[]]], "x,]"]'), _split_array(b"[]"), _split_array(b"[1,]")
    ([b'[[[]]]', b'"x,]"'], [], None)
    """
    i, n = 0, len(message)
    while i < n and message[i] in _SPACE:
        i += 1
    if i == n or message[i] != 91:  # "["
        return None
    out: list[bytes] = []
    depth, start, in_string, escaped = 0, i + 1, False, False
    for j in range(i + 1, n):
        c = message[j]
        if in_string:
            if escaped:
                escaped = False
            elif c == _ESCAPE:
                escaped = True
            elif c == _QUOTE:
                in_string = False
        elif c == _QUOTE:
            in_string = True
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE and depth > 0:
            depth -= 1
        elif depth == 0 and (c == _COMMA or c == 93):  # "," or the array's "]"
            element = message[start:j].strip()
            if not element and (c == _COMMA or out):
                return None  # an empty element: "[1,]", "[,1]"
            if element:
                out.append(element)
            if c == 93:
                return out if not message[j + 1:].strip() else None
            start = j + 1
    return None


def _kept(raw: bytes, decoder: EventDecoder) -> bytes:
    """What a rejects store keeps of an oversize message: all of it up to the message limit."""
    return raw[: decoder.max_message_bytes]
