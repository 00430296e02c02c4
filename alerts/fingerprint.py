"""fingerprint: the stable dedup key of a signal's condition.

>>> from stream.signals import Kind, Signal, Window
>>> w = Window(0, 9, 0.0, 9.0, 10)
>>> a = Signal("car_loan", Kind.DRIFT, "car_value", "psi", 0.3, 0.2, w, {}, 9.0, 9)
>>> b = Signal("car_loan", Kind.DRIFT, "car_value", "psi", 0.9, 0.2, w, {"x": 1}, 99.0, 99)
>>> fingerprint(a) == fingerprint(b), len(fingerprint(a))
(True, 16)
>>> fingerprint(a) == series_fingerprint("car_loan", Kind.DRIFT, "car_value", "psi", None, None)
True
"""

from __future__ import annotations

import hashlib
import uuid

from stream.signals import Signal

_NAMESPACE = uuid.UUID("6f0d3c4e-2b7a-5d0e-9c8f-7a1b2c3d4e5f")


def fingerprint(signal: Signal) -> str:
    """Model, kind, subject, statistic, slice and version: what makes a condition the same."""
    return series_fingerprint(signal.model_id, signal.kind, signal.subject, signal.statistic,
                              signal.slice, signal.model_version)


def series_fingerprint(model_id: str, kind: str, subject: str, statistic: str,
                       slice: str | None, model_version: str | None) -> str:
    """The fingerprint of a series, signal or not (a sample's: it joins its signals')."""
    key = "\x1f".join((model_id, str(kind), subject, statistic, slice or "",
                       model_version or ""))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def stable_id(*parts: object) -> str:
    """A deterministic id (UUID5) from parts, so that re-processing yields the same ids."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(map(str, parts))))
