"""Signals: typed statements, with evidence, that something about a model changed.

A signal is what the monitors say; whether a person is paged is triage's business.

>>> w = Window(start_seq=0, end_seq=999, start_ts=0.0, end_ts=999.0, count=1000)
>>> s = Signal(model_id="car_loan", kind=Kind.DRIFT, subject="car_value", statistic="psi",
...            value=0.31, threshold=0.2, window=w, evidence={"reference_mean": 1.0},
...            ts=999.0, seq=999)
>>> s.to_dict()["ts"]
'1970-01-01T00:16:39Z'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.kinds import Kind

__all__ = ["Evaluation", "Findings", "Kind", "Sample", "Scope", "Signal", "Window", "iso"]

EvidenceValue = float | int | str | bool | None | list[Any] | dict[str, Any]


def iso(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC with a Z (whole seconds unless there is a fraction)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Window:
    """The stretch of events a statistic was computed over (event indices and times)."""

    start_seq: int
    end_seq: int
    start_ts: float
    end_ts: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_seq": self.start_seq,
            "end_seq": self.end_seq,
            "start": iso(self.start_ts),
            "end": iso(self.end_ts),
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class Signal:
    """One monitor finding. ``seq`` is the index of the event at which it was raised."""

    model_id: str
    kind: Kind
    subject: str
    statistic: str
    value: float
    threshold: float
    window: Window
    evidence: dict[str, EvidenceValue] = field(hash=False)
    ts: float
    seq: int
    model_version: str | None = None
    slice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "kind": str(self.kind),
            "subject": self.subject,
            "slice": self.slice,
            "statistic": self.statistic,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window.to_dict(),
            "evidence": self.evidence,
            "ts": iso(self.ts),
            "seq": self.seq,
        }


# A series inside an evaluation's scope: (kind, subject, statistic).
SeriesKey = tuple[Kind, str, str]


@dataclass(frozen=True, slots=True)
class Scope:
    """What one evaluation of a monitor covered: the series of ``kinds`` (and ``subject``
    and ``statistics``, unless None = every one) with exactly this ``slice`` and
    ``model_version``.

    >>> s = Scope(frozenset({Kind.DRIFT, Kind.SCHEMA}))
    >>> s.covers(Kind.DRIFT, "car_value", "psi", None, None)
    True
    >>> s.covers(Kind.DRIFT, "car_value", "psi", "channel=web", None)
    False
    """

    kinds: frozenset[Kind]
    subject: str | None = None
    slice: str | None = None
    model_version: str | None = None
    statistics: frozenset[str] | None = None

    def covers(self, kind: str, subject: str, statistic: str, slice: str | None,
               model_version: str | None) -> bool:
        return (kind in self.kinds and (self.subject is None or subject == self.subject)
                and (self.statistics is None or statistic in self.statistics)
                and slice == self.slice and model_version == self.model_version)


@dataclass(frozen=True, slots=True)
class Sample:
    """The value a series had when an evaluation tested it against its ``threshold``
    (fired, held or clear), for charts of every evaluation, not only of the signals. When
    the series fired, ``value`` and ``threshold`` are the signal's (same rounding).

    >>> Sample(Kind.DRIFT, "car_value", "psi", None, None, 0.04, 0.2).key
    (<Kind.DRIFT: 'drift'>, 'car_value', 'psi')
    """

    kind: Kind
    subject: str
    statistic: str
    slice: str | None
    model_version: str | None
    value: float
    threshold: float

    @property
    def key(self) -> SeriesKey:
        return (self.kind, self.subject, self.statistic)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluation of a monitor, at the event with index ``seq``: the statement that
    every series in ``scope`` was tested. A series in ``fired`` raised a :class:`Signal` at
    this ``seq``; one in ``held`` was inconclusive (too few values, or inside the hysteresis
    band just under its threshold); every other one was *clear*. Triage resolves an alert
    after enough clear evaluations in a row, so alerts end on what the monitors saw, not on
    how much event time passed (pages are a function of the events alone). ``samples`` are
    the values of the series it tested that had one (fired, held or clear), for charts.

    >>> e = Evaluation("m", Scope(frozenset({Kind.DRIFT})), seq=999, ts=0.0,
    ...                held=frozenset({(Kind.DRIFT, "car_value", "psi")}))
    >>> e.is_clear(Kind.DRIFT, "car_value", "psi"), e.is_clear(Kind.DRIFT, "age", "psi")
    (False, True)
    """

    model_id: str
    scope: Scope
    seq: int
    ts: float
    held: frozenset[SeriesKey] = frozenset()
    fired: frozenset[SeriesKey] = frozenset()
    samples: tuple[Sample, ...] = ()

    def is_clear(self, kind: str, subject: str, statistic: str) -> bool:
        key = (kind, subject, statistic)
        return key not in self.held and key not in self.fired


@dataclass(slots=True)
class Findings:
    """What monitors return: the signals raised and the evaluations made (every evaluation,
    fired or not, so that triage can tell a condition that ended from one not re-tested)."""

    signals: list[Signal] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        self.signals.extend(other.signals)
        self.evaluations.extend(other.evaluations)
