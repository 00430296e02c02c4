"""The kinds of finding: what monitors say and alerts are, and what a silence may name.

At the bottom with the configuration because people name them there (a silence's
``kind``); the core's signals carry them (:mod:`stream.signals` re-exports it).

>>> Kind("drift") is Kind.DRIFT, str(Kind.DATA_QUALITY)
(True, 'data_quality')
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """Signal (and alert) kinds; CONTRACT §4 lists the ones users may rely on. No monitor
    emits ``canary`` or ``fallback`` yet: a version that does worse is a ``performance``
    finding with its ``model_version`` (the kinds stay, for the CONTRACT's views and
    for triage, which scores them as performance)."""

    SCHEMA = "schema"
    DATA_QUALITY = "data_quality"
    DRIFT = "drift"
    PREDICTION_DRIFT = "prediction_drift"
    LABEL_DRIFT = "label_drift"
    PERFORMANCE = "performance"
    BUSINESS_METRIC = "business_metric"
    CANARY = "canary"
    FALLBACK = "fallback"
    MONITORING_HEALTH = "monitoring_health"
