"""dedupe: a repeat updates its alert; a condition that had resolved opens a new one."""

from __future__ import annotations

from dataclasses import replace

from alerts.fingerprint import stable_id
from alerts.model import Alert, Status
from stream.signals import Signal


def dedupe(previous: Alert | None, fp: str, signal: Signal, flap_window: float,
           flap_threshold: int) -> Alert:
    """The alert this signal belongs to, updated with it."""
    if previous is not None and previous.active:
        # event time may run behind (another source, late data): last_seen never goes back
        return replace(previous, last_seen=max(previous.last_seen, signal.ts),
                       last_seq=signal.seq,
                       occurrences=previous.occurrences + 1, value=signal.value,
                       threshold=signal.threshold, evidence=dict(signal.evidence))
    flaps = 0
    if (previous is not None and previous.resolved_at is not None
            and signal.ts - previous.resolved_at <= flap_window):
        flaps = previous.flaps + 1
    return Alert(
        alert_id=stable_id("alert", fp, signal.seq), fingerprint=fp,
        model_id=signal.model_id, kind=str(signal.kind), subject=signal.subject,
        statistic=signal.statistic, slice=signal.slice, model_version=signal.model_version,
        first_seen=signal.ts, last_seen=signal.ts, first_seq=signal.seq, last_seq=signal.seq,
        occurrences=1, value=signal.value, threshold=signal.threshold,
        evidence=dict(signal.evidence), status=Status.OPEN, flaps=flaps,
        flapping=flaps >= flap_threshold,
    )
