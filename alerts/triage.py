"""The triage pipeline: every stage, in order, in one place (:meth:`Triage.process`).

    signal → fingerprint → dedupe → silence → inhibit → group → score → route → page
    evaluation → resolve (after enough clear evaluations in a row) → route
    then: repeats after a page → thread replies (one per incident and hour of event time)

Triage is pure: it keeps its state in memory and returns :class:`Changes` for a store to
persist in one transaction. Its decisions are a function of the events alone: an alert
resolves when the monitor that raised it has evaluated its series clear
``resolve_after_evaluations`` times in a row, and a condition that fires again within
``flap_window_evaluations`` evaluations of resolving reopens its incident (it does not page
again) and counts as a flap; no decision counts seconds of event time, so the same events
give the same pages at any traffic rate, however they are batched, live or from a backlog.
Event time remains where a person's time is meant: silences (and, in the notifier,
escalation and the digest). Re-processing a signal it has seen (same fingerprint, same or
earlier index) changes nothing, so replays and redeliveries never create a second alert or
a second page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from alerts.dedupe import dedupe
from alerts.fingerprint import fingerprint, series_fingerprint, stable_id
from alerts.inhibit import inhibit
from alerts.model import Alert, Incident, Page, Route, Silence, Status
from alerts.score import is_muted, route_for, score, score_incident
from alerts.silence import silence
from config.file import TriagePolicy
from stream.signals import Evaluation, Sample, Signal

FeedbackKey = tuple[str, str, str]  # model_id, kind, subject


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


@dataclass(frozen=True, slots=True)
class Measurement:
    """A sample of an evaluation, for the store's snapshots: the series' value at ``seq``
    (under the fingerprint an alert of that series has)."""

    fingerprint: str
    model_id: str
    seq: int
    ts: float
    sample: Sample


@dataclass(frozen=True, slots=True)
class ThreadReply:
    """What still fires in a paged incident, for a reply in its page's thread: one per
    incident per hour of event time (``hour``), so repeats do not page again and do not
    flood the thread either. ``summaries`` are the alerts that repeated, by alert id."""

    incident_id: str
    hour: int
    summaries: dict[str, str] = field(hash=False)

    SHOWN = 10  # alerts listed in one reply (the count says how many there were)


@dataclass
class Changes:
    """What one call changed: the latest snapshot of each touched alert and incident, the
    new occurrences and pages, the incidents that resolved, and the evaluations' samples."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    occurrences: list[Occurrence] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    resolved_incidents: list[str] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    clocks: dict[str, float] = field(default_factory=dict)
    thread_replies: dict[tuple[str, int], ThreadReply] = field(default_factory=dict)
    samples: list[Measurement] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.alerts.update(other.alerts)
        self.incidents.update(other.incidents)
        self.occurrences.extend(other.occurrences)
        self.pages.extend(other.pages)
        self.resolved_incidents.extend(other.resolved_incidents)
        self.signals.extend(other.signals)
        self.clocks.update(other.clocks)
        self.samples.extend(other.samples)
        for key, reply in other.thread_replies.items():
            mine = self.thread_replies.get(key)
            self.thread_replies[key] = reply if mine is None else replace(
                mine, summaries={**mine.summaries, **reply.summaries})

    def __bool__(self) -> bool:
        return bool(self.alerts or self.incidents or self.occurrences or self.pages)


class Triage:
    """Signals and evaluations in; alerts, incidents and pages out.

    Parameters
    ----------
    policy
        Thresholds and counts (:class:`config.file.TriagePolicy`).
    alerts, incidents
        State to resume from (e.g. loaded from the store): the latest alert of every
        fingerprint, and the incidents that are not resolved (or that a recently resolved
        alert belongs to).
    feedback
        How many times on-call marked (model, kind, subject) "not actionable".
    silences
        Active silences.
    clocks
        Event time already reached, per model (kept for history; no decision uses it).
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
        self.by_model: dict[str, set[str]] = {}  # model -> ids of its alerts in memory
        for a in sorted(alerts, key=lambda a: a.first_seq):
            self._remember(a)
            self.last_seq[a.fingerprint] = max(a.last_seq, self.last_seq.get(a.fingerprint, -1))
        self.incidents: dict[str, Incident] = {i.incident_id: i for i in incidents}
        self.feedback: Counter[FeedbackKey] = feedback if feedback is not None else Counter()
        self.silences: list[Silence] = list(silences)
        self.clocks: dict[str, float] = dict(clocks or {})
        # fingerprint -> evaluations of the series since its last kept sample, and its state
        self.sampled: dict[str, tuple[int, str]] = {}

    def clock(self, model_id: str) -> float:
        return self.clocks.get(model_id, float("-inf"))

    # -- the pipeline ---------------------------------------------------------------------
    def process(self, signals: Sequence[Signal],
                evaluations: Sequence[Evaluation] = ()) -> Changes:
        """Run each signal through every stage and apply each evaluation, in event order (at
        the same index, the signals an evaluation raised come first)."""
        changes = Changes()
        items: list[tuple[int, int, Signal | Evaluation]] = [
            *((s.seq, 0, s) for s in signals), *((e.seq, 1, e) for e in evaluations)]
        items.sort(key=lambda item: (item[0], item[1]))
        for _, _, item in items:
            if isinstance(item, Signal):
                self._signal(item, changes)
            else:
                self._evaluation(item, changes)
        self._thread(changes)
        return changes

    def _thread(self, changes: Changes) -> None:
        """thread: an occurrence after its incident was paged goes to the page's thread
        (a store may deliver it, or not in a dry run), grouped by incident and hour."""
        for o in changes.occurrences:
            alert = changes.alerts.get(o.alert_id)
            if alert is None or alert.incident_id is None:
                continue
            incident = (self.incidents.get(alert.incident_id)
                        or changes.incidents.get(alert.incident_id))
            if incident is None or incident.paged_at is None or o.ts <= incident.paged_at:
                continue
            key = (alert.incident_id, int(o.ts // 3600))
            reply = changes.thread_replies.get(key)
            if reply is None:
                reply = changes.thread_replies[key] = ThreadReply(*key, summaries={})
            reply.summaries[alert.alert_id] = alert.summary

    def _signal(self, signal: Signal, changes: Changes) -> None:
        p = self.policy
        fp = fingerprint(signal)
        if signal.seq <= self.last_seq.get(fp, -1):
            return  # already processed: a redelivery or a replay of the same events
        model = signal.model_id
        now = signal.ts  # silences are a person's time: the signal's own event time
        if now > self.clock(model):
            self.clocks[model] = changes.clocks[model] = now
        previous = self.alerts.get(self.latest.get(fp, ""))
        alert = dedupe(previous, fp, signal, p.flap_window_evaluations, p.flap_threshold)
        alert = silence(alert, self.silences, now)
        alert = inhibit(alert, self._model_alerts(model), p)
        alert = self._group(alert, previous, now, changes)
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

    def _evaluation(self, e: Evaluation, changes: Changes) -> None:
        """resolve: count the evaluation for every alert of its scope; an active alert that
        did not fire in it is clear (unless held) or not; enough clear evaluations in a row
        resolve it (at the evaluation's event time). A resolved alert counts the evaluations
        since, for flap detection, and is forgotten once past the flap window. Its samples
        go to the changes, thinned (:meth:`_samples`)."""
        p = self.policy
        self._samples(e, changes)
        touched: set[str] = set()
        for alert_id in sorted(self.by_model.get(e.model_id, ())):
            a = self.alerts[alert_id]
            if (e.seq <= a.evaluated_seq
                    or not e.scope.covers(a.kind, a.subject, a.statistic, a.slice,
                                          a.model_version)):
                continue  # counted already (a replay, a redelivery), or not its monitor
            if not a.active:
                a = replace(a, evaluations_since_resolved=a.evaluations_since_resolved + 1,
                            evaluated_seq=e.seq)
                self._keep(a, changes)
                if a.evaluations_since_resolved > p.flap_window_evaluations:
                    self._forget(a)
                continue
            if a.last_seq >= e.seq:
                continue  # it fired in this evaluation
            clean = a.clean_evaluations + 1 if e.is_clear(a.kind, a.subject, a.statistic) else 0
            if clean >= p.resolve_after_evaluations:
                self._keep(replace(a, status=Status.RESOLVED, resolved_at=e.ts,
                                   clean_evaluations=clean, evaluations_since_resolved=0,
                                   evaluated_seq=e.seq), changes)
                if a.incident_id is not None:
                    touched.add(a.incident_id)
            else:
                self._keep(replace(a, clean_evaluations=clean, evaluated_seq=e.seq), changes)
        if not touched:
            return
        for incident_id in sorted(touched):
            self._maybe_resolve(incident_id, e.ts, changes)
        for incident_id in sorted(self._reinhibit(e.model_id, changes) | touched):
            self._route(incident_id, e.ts, None, changes)

    def _samples(self, e: Evaluation, changes: Changes) -> None:
        """A series' sample is kept every ``sample_every`` evaluations of it, and whenever
        it fired or its state (clear, held, fired) is not the previous evaluation's: a
        chart shows the level between incidents and every turn, at a fraction of the rows.
        Counted per series since this triage started (a restart keeps the next one)."""
        every = self.policy.sample_every
        for s in e.samples:
            fp = series_fingerprint(e.model_id, s.kind, s.subject, s.statistic, s.slice,
                                    s.model_version)
            key = s.key
            state = "fired" if key in e.fired else "held" if key in e.held else "clear"
            skipped, last = self.sampled.get(fp, (0, ""))
            if state == "fired" or state != last or skipped + 1 >= every:
                changes.samples.append(Measurement(fp, e.model_id, e.seq, e.ts, s))
                self.sampled[fp] = (0, state)
            else:
                self.sampled[fp] = (skipped + 1, state)

    # -- stages that need the state ------------------------------------------------------
    def _model_alerts(self, model_id: str) -> list[Alert]:
        return [a for i in sorted(self.by_model.get(model_id, ()))
                if (a := self.alerts[i]).active]

    def _forget(self, alert: Alert) -> None:
        """Keep memory bounded: drop a resolved alert past its flap window (the store keeps
        it; ``last_seq`` still guards against re-processing its signals), and its incident
        once none of the incident's alerts is left in memory."""
        del self.alerts[alert.alert_id]
        self.by_model[alert.model_id].discard(alert.alert_id)
        if self.latest.get(alert.fingerprint) == alert.alert_id:
            del self.latest[alert.fingerprint]
        incident = self.incidents.get(alert.incident_id or "")
        if (incident is not None and incident.status is Status.RESOLVED
                and not any(a in self.alerts for a in incident.alert_ids)):
            del self.incidents[incident.incident_id]

    def _group(self, alert: Alert, previous: Alert | None, now: float,
               changes: Changes) -> Alert:
        """group: join the model's open incident, or reopen the incident of the alert this
        one flaps from (hysteresis: having paged, it does not page again), or open one."""
        if alert.incident_id is not None and alert.incident_id in self.incidents:
            incident = self.incidents[alert.incident_id]
            if incident.status is not Status.RESOLVED:
                return alert
        reopen = (previous.incident_id if previous is not None and alert.flaps > 0
                  and previous.alert_id != alert.alert_id else None)
        for incident in self.incidents.values():
            if incident.model_id != alert.model_id:
                continue
            if incident.status is Status.RESOLVED and incident.incident_id != reopen:
                continue
            joined = replace(incident, updated_at=max(incident.updated_at, now),
                             status=Status.OPEN, resolved_at=None,
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

    def _maybe_resolve(self, incident_id: str, now: float, changes: Changes) -> None:
        incident = self.incidents.get(incident_id)
        if incident is None or incident.status is Status.RESOLVED:
            return
        if not self._has_active(incident):
            done = replace(incident, status=Status.RESOLVED, resolved_at=now,
                           updated_at=max(incident.updated_at, now))
            self.incidents[incident_id] = changes.incidents[incident_id] = done
            changes.resolved_incidents.append(incident_id)

    def _has_active(self, incident: Incident) -> bool:
        return any(self.alerts[a].active for a in incident.alert_ids if a in self.alerts)

    def _remember(self, alert: Alert) -> None:
        self.alerts[alert.alert_id] = alert
        latest = self.alerts.get(self.latest.get(alert.fingerprint, ""))
        if latest is None or alert.first_seq >= latest.first_seq:
            self.latest[alert.fingerprint] = alert.alert_id
        self.by_model.setdefault(alert.model_id, set()).add(alert.alert_id)

    def _keep(self, alert: Alert, changes: Changes) -> None:
        self._remember(alert)
        changes.alerts[alert.alert_id] = alert
        if alert.last_seq > self.last_seq.get(alert.fingerprint, -1):
            self.last_seq[alert.fingerprint] = alert.last_seq


def _incident_summary(members: list[Alert], lead: Alert | None) -> str:
    if not members:
        return ""
    head = lead or members[0]
    others = len({(a.kind, a.subject, a.slice) for a in members}) - 1
    more = f" (+{others} related)" if others > 0 else ""
    return head.summary + more
