"""The triage pipeline: every stage, in order, in one place (:meth:`Triage.process`).

    signal → fingerprint → dedupe → silence → inhibit → group → score → route → page

Triage is pure: it keeps its state in memory, takes event time from its callers (an
injectable clock), and returns :class:`Changes` for a store to persist in one transaction.
Re-processing a signal it has seen (same fingerprint, same or earlier index) changes
nothing, so replays and redeliveries never create a second alert or a second page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from alerts.dedupe import dedupe
from alerts.fingerprint import fingerprint, stable_id
from alerts.inhibit import inhibit
from alerts.model import Alert, Incident, Page, Route, Silence, Status
from alerts.score import is_muted, route_for, score, score_incident
from alerts.silence import silence
from stream.signals import Signal
from watchkeeper.config import TriagePolicy

FeedbackKey = tuple[str, str, str]  # model_id, kind, subject
RETAIN_RESOLVED_SECONDS = 7 * 24 * 3600  # resolved alerts/incidents kept in memory this long


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One signal that an alert absorbed (unique by fingerprint and seq)."""

    alert_id: str
    fingerprint: str
    seq: int
    ts: float
    value: float
    threshold: float
    evidence: dict[str, object] = field(hash=False)


@dataclass
class Changes:
    """What one call changed: the latest snapshot of each touched alert and incident, the
    new occurrences and pages, and the incidents that resolved."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    occurrences: list[Occurrence] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    resolved_incidents: list[str] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    clocks: dict[str, float] = field(default_factory=dict)

    def merge(self, other: Changes) -> None:
        self.alerts.update(other.alerts)
        self.incidents.update(other.incidents)
        self.occurrences.extend(other.occurrences)
        self.pages.extend(other.pages)
        self.resolved_incidents.extend(other.resolved_incidents)
        self.signals.extend(other.signals)
        self.clocks.update(other.clocks)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.incidents or self.occurrences or self.pages)


class Triage:
    """Signals in; alerts, incidents and pages out.

    Parameters
    ----------
    policy
        Thresholds and windows (:class:`watchkeeper.config.TriagePolicy`).
    alerts, incidents
        State to resume from (e.g. loaded from the store): the latest alert of every
        fingerprint, and the incidents that are not resolved.
    feedback
        How many times on-call marked (model, kind, subject) "not actionable".
    silences
        Active silences.
    clocks
        Event time already reached, per model (each model's stream has its own); a clock
        never goes back.
    """

    def __init__(self, policy: TriagePolicy, *, alerts: Iterable[Alert] = (),
                 incidents: Iterable[Incident] = (),
                 feedback: Counter[FeedbackKey] | None = None,
                 silences: Sequence[Silence] = (),
                 clocks: dict[str, float] | None = None) -> None:
        self.policy = policy
        self.alerts: dict[str, Alert] = {}
        self.latest: dict[str, str] = {}  # fingerprint -> alert_id of its latest alert
        self.last_seq: dict[str, int] = {}  # fingerprint -> index of its last signal processed
        for a in sorted(alerts, key=lambda a: a.first_seq):
            self.alerts[a.alert_id] = a
            self.latest[a.fingerprint] = a.alert_id
            self.last_seq[a.fingerprint] = max(a.last_seq, self.last_seq.get(a.fingerprint, -1))
        self.incidents: dict[str, Incident] = {i.incident_id: i for i in incidents}
        self.feedback: Counter[FeedbackKey] = feedback if feedback is not None else Counter()
        self.silences: list[Silence] = list(silences)
        self.clocks: dict[str, float] = dict(clocks or {})

    def clock(self, model_id: str) -> float:
        return self.clocks.get(model_id, float("-inf"))

    # -- the pipeline ---------------------------------------------------------------------
    def process(self, signals: Sequence[Signal]) -> Changes:
        """Run each signal through every stage, in event order."""
        changes = Changes()
        p = self.policy
        for signal in sorted(signals, key=lambda s: s.seq):
            fp = fingerprint(signal)
            if signal.seq <= self.last_seq.get(fp, -1):
                continue  # already processed: a redelivery or a replay of the same events
            model = signal.model_id
            now = max(self.clock(model), signal.ts)
            self.clocks[model] = changes.clocks[model] = now
            self._expire(model, now, changes)  # what went quiet before this signal resolves
            previous = self.alerts.get(self.latest.get(fp, ""))
            alert = dedupe(previous, fp, signal, p.flap_window_seconds, p.flap_threshold)
            alert = silence(alert, self.silences, now)
            alert = inhibit(alert, self._model_alerts(model), p)
            alert = self._group(alert, now, changes)
            alert = self._score(alert)
            self._keep(alert, changes)
            changes.occurrences.append(Occurrence(
                alert.alert_id, fp, signal.seq, signal.ts, signal.value, signal.threshold,
                dict(signal.evidence)))
            changes.signals.append(signal)
            assert alert.incident_id is not None
            touched = self._reinhibit(model, changes) | {alert.incident_id}
            for incident_id in sorted(touched):
                self._route(incident_id, now, signal.seq, changes)
        return changes

    def advance(self, watermarks: dict[str, float]) -> Changes:
        """Move each model's clock to its watermark (event time): auto-resolve what has been
        quiet for ``resolve_after_seconds``, and incidents left with no active alert."""
        changes = Changes()
        for model, mark in watermarks.items():
            if mark > self.clock(model):
                self.clocks[model] = changes.clocks[model] = mark
            self._expire(model, self.clock(model), changes)
        return changes

    # -- stages that need the state ------------------------------------------------------
    def _model_alerts(self, model_id: str) -> list[Alert]:
        return [a for a in self.alerts.values() if a.model_id == model_id and a.active]

    def _expire(self, model: str, now: float, changes: Changes) -> None:
        """auto-resolve: alerts quiet for ``resolve_after_seconds`` (resolved at the moment
        they went quiet, in event time), then their incidents; forget long-resolved state."""
        after = self.policy.resolve_after_seconds
        touched: set[str] = set()
        for alert in self._model_alerts(model):
            if alert.last_seen < now - after:
                self._keep(replace(alert, status=Status.RESOLVED,
                                   resolved_at=alert.last_seen + after), changes)
                if alert.incident_id is not None:
                    touched.add(alert.incident_id)
        if not touched:
            return
        for incident_id in sorted(touched):
            self._maybe_resolve(incident_id, changes)
        for incident_id in sorted(self._reinhibit(model, changes) | touched):
            self._route(incident_id, now, None, changes)
        self._forget(model, now)

    def _forget(self, model: str, now: float) -> None:
        """Keep memory bounded: drop alerts and incidents resolved long ago (the store keeps
        them; ``last_seq`` still guards against re-processing their signals)."""
        horizon = now - RETAIN_RESOLVED_SECONDS
        for alert_id, a in list(self.alerts.items()):
            if (a.model_id == model and a.resolved_at is not None and a.resolved_at < horizon
                    and not a.active):
                del self.alerts[alert_id]
                if self.latest.get(a.fingerprint) == alert_id:
                    del self.latest[a.fingerprint]
        for incident_id, i in list(self.incidents.items()):
            if i.model_id == model and i.resolved_at is not None and i.resolved_at < horizon:
                del self.incidents[incident_id]

    def _group(self, alert: Alert, now: float, changes: Changes) -> Alert:
        """group: join the model's open incident, or open one."""
        if alert.incident_id is not None and alert.incident_id in self.incidents:
            incident = self.incidents[alert.incident_id]
            if incident.status is not Status.RESOLVED:
                return alert
        window = self.policy.group_window_seconds
        for incident in self.incidents.values():
            if incident.model_id != alert.model_id:
                continue
            if incident.status is Status.RESOLVED and not (
                incident.resolved_at is not None and now - incident.resolved_at <= window
                and self._contains(incident, alert.fingerprint)
            ):
                continue
            # hysteresis: the same condition firing again soon after its incident resolved
            # reopens that incident (which, having paged, does not page again)
            joined = replace(incident, updated_at=now, status=Status.OPEN, resolved_at=None,
                             alert_ids=(*incident.alert_ids, alert.alert_id)
                             if alert.alert_id not in incident.alert_ids
                             else incident.alert_ids)
            self.incidents[joined.incident_id] = changes.incidents[joined.incident_id] = joined
            return replace(alert, incident_id=joined.incident_id)
        incident = Incident(incident_id=stable_id("incident", alert.model_id, alert.first_seq,
                                                  alert.fingerprint),
                            model_id=alert.model_id, opened_at=now, updated_at=now,
                            alert_ids=(alert.alert_id,))
        self.incidents[incident.incident_id] = changes.incidents[incident.incident_id] = incident
        return replace(alert, incident_id=incident.incident_id)

    def _score(self, alert: Alert) -> Alert:
        """score + route of one alert; muted alerts are kept in history only."""
        key = (alert.model_id, alert.kind, alert.subject)
        severity, factors = score(alert, self.policy, self.feedback[key])
        route = route_for(severity, self.policy)
        if is_muted(alert):
            route = Route.LOG
        return replace(alert, severity=severity, factors=factors, route=route)

    def _reinhibit(self, model_id: str, changes: Changes) -> set[str]:
        """inhibit again: a new cause mutes older symptoms; a resolved one releases them.
        Returns the incidents whose alerts changed (to be routed once, afterwards)."""
        same = self._model_alerts(model_id)
        touched: set[str] = set()
        for alert in same:
            updated = inhibit(alert, same, self.policy)
            if updated is not alert:
                self._keep(self._score(updated), changes)
                if updated.incident_id is not None:
                    touched.add(updated.incident_id)
        return touched

    def _route(self, incident_id: str, now: float, seq: int | None, changes: Changes) -> None:
        """route the incident on its worst live alert; page it once when it must page."""
        incident = self.incidents.get(incident_id)
        if incident is None or incident.status is Status.RESOLVED:
            return  # history keeps how it was routed while it was open
        members = [self.alerts[a] for a in incident.alert_ids if a in self.alerts]
        severity, factors, lead = score_incident(incident, members, self.policy)
        route = route_for(severity, self.policy)
        summary = _incident_summary(members, lead)
        updated = replace(incident, severity=severity, factors=factors, route=route,
                          lead_alert_id=lead.alert_id if lead else incident.lead_alert_id,
                          summary=summary)
        if route is Route.PAGE and incident.paged_at is None and lead is not None:
            updated = replace(updated, paged_at=now)
            live = tuple(a.alert_id for a in members if a.active and not is_muted(a))
            changes.pages.append(Page(
                page_id=stable_id("page", incident_id, 0), incident_id=incident_id,
                alert_id=lead.alert_id, model_id=incident.model_id, kind=lead.kind,
                subject=lead.subject, paged_at=now, channel=self.policy.channel,
                escalation_level=0, summary=summary, alert_ids=live, severity=severity,
                factors=factors, seq=seq if seq is not None else lead.last_seq))
            for alert_id in live:
                self._keep(replace(self.alerts[alert_id], paged=True), changes)
        if updated != incident:
            self.incidents[incident_id] = changes.incidents[incident_id] = updated

    def _maybe_resolve(self, incident_id: str, changes: Changes) -> None:
        incident = self.incidents.get(incident_id)
        if incident is None or incident.status is Status.RESOLVED:
            return
        if not self._has_active(incident):
            # resolved when its last alert did, in event time, whatever the caller's step
            at = max((self.alerts[a].resolved_at or 0.0 for a in incident.alert_ids
                      if a in self.alerts), default=self.clock(incident.model_id))
            done = replace(incident, status=Status.RESOLVED, resolved_at=at,
                           updated_at=max(incident.updated_at, at))
            self.incidents[incident_id] = changes.incidents[incident_id] = done
            changes.resolved_incidents.append(incident_id)

    def _contains(self, incident: Incident, fp: str) -> bool:
        return any(self.alerts[a].fingerprint == fp for a in incident.alert_ids
                   if a in self.alerts)

    def _has_active(self, incident: Incident) -> bool:
        return any(self.alerts[a].active for a in incident.alert_ids if a in self.alerts)

    def _keep(self, alert: Alert, changes: Changes) -> None:
        self.alerts[alert.alert_id] = changes.alerts[alert.alert_id] = alert
        self.latest[alert.fingerprint] = alert.alert_id
        if alert.last_seq > self.last_seq.get(alert.fingerprint, -1):
            self.last_seq[alert.fingerprint] = alert.last_seq


def _incident_summary(members: list[Alert], lead: Alert | None) -> str:
    if not members:
        return ""
    head = lead or members[0]
    others = len({(a.kind, a.subject, a.slice) for a in members}) - 1
    more = f" (+{others} related)" if others > 0 else ""
    return head.summary + more
