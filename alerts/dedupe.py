"""dedupe: a repeat updates its alert; a condition that had resolved opens a new one."""

from __future__ import annotations

from dataclasses import replace

from alerts.fingerprint import stable_id
from alerts.model import Alert, Status
from stream.signals import Signal


def dedupe(previous: Alert | None, fp: str, signal: Signal, flap_window: int,
           flap_threshold: int) -> Alert:
    """The alert this signal belongs to, updated with it (its run of clear evaluations
    broken). A condition that fires again within ``flap_window`` evaluations of its
    previous alert resolving is a flap of it."""
    if previous is not None and previous.active:
        # event time may run behind (another source, late data): last_seen never goes back
        return replace(previous, last_seen=max(previous.last_seen, signal.ts),
                       last_seq=signal.seq,
                       occurrences=previous.occurrences + 1, value=signal.value,
                       threshold=signal.threshold, evidence=dict(signal.evidence),
                       clean_evaluations=0)
    flaps = 0
    if (previous is not None and previous.resolved_at is not None
            and previous.evaluations_since_resolved <= flap_window):
        flaps = previous.flaps + 1
    return Alert(
        alert_id=stable_id("alert", fp, signal.seq), fingerprint=fp,
        model_id=signal.model_id, kind=signal.kind, subject=signal.subject,
        statistic=signal.statistic, slice=signal.slice, model_version=signal.model_version,
        first_seen=signal.ts, last_seen=signal.ts, first_seq=signal.seq, last_seq=signal.seq,
        occurrences=1, value=signal.value, threshold=signal.threshold,
        evidence=dict(signal.evidence), status=Status.OPEN, flaps=flaps,
        flapping=flaps >= flap_threshold,
    )
