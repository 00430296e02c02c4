"""fingerprint: the stable dedup key of a signal's condition.

>>> from stream.signals import Kind, Signal, Window
>>> w = Window(0, 9, 0.0, 9.0, 10)
>>> a = Signal("car_loan", Kind.DRIFT, "car_value", "psi", 0.3, 0.2, w, {}, 9.0, 9)
>>> b = Signal("car_loan", Kind.DRIFT, "car_value", "psi", 0.9, 0.2, w, {"x": 1}, 99.0, 99)
>>> fingerprint(a) == fingerprint(b), len(fingerprint(a))
(True, 16)
"""

from __future__ import annotations

import hashlib
import uuid

from stream.signals import Signal

_NAMESPACE = uuid.UUID("6f0d3c4e-2b7a-5d0e-9c8f-7a1b2c3d4e5f")


def fingerprint(signal: Signal) -> str:
    """Model, kind, subject, statistic, slice and version: what makes a condition the same."""
    key = "\x1f".join((signal.model_id, str(signal.kind), signal.subject, signal.statistic,
                       signal.slice or "", signal.model_version or ""))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def stable_id(*parts: object) -> str:
    """A deterministic id (UUID5) from parts, so that re-processing yields the same ids."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(map(str, parts))))
