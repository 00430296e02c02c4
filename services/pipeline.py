"""The whole flow for one process: core (monitors) → triage → store.

Drivers (the file replay, the demo, the Kafka worker) hand it batches of messages; it
keeps the counts a report needs. The core and triage are pure; the store is the only I/O.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from alerts.model import Page
from alerts.store import Checkpoint, PipelineStore, Progress
from alerts.triage import Changes, Triage
from config.file import Config
from stream.core import BatchResult, Core
from stream.events import Reason
from stream.reference import load_profiles
from stream.signals import Signal
from stream.state import State, StateError, decode, encode

log = logging.getLogger("watchkeeper.pipeline")
MUTES_REFRESH_SECONDS = 30.0
# 2: evaluations, the join's own clocks; 3: estimated performance (2 and 3 were pickles);
# 4: plain state (msgpack), no configuration or reference in it
CHECKPOINT_FORMAT = 4


class StaleCheckpoint(ValueError):
    """A checkpoint written by an older version of the monitors; ``seq`` is the next event
    index it had reached, where it could be read (a fresh core must start above it)."""

    def __init__(self, message: str, seq: int = 0) -> None:
        super().__init__(message)
        self.seq = seq


def checkpoint_state(blob: bytes) -> State:
    """The monitors' state a checkpoint (:meth:`Pipeline.snapshot`) holds, as plain data;
    :class:`StaleCheckpoint` if it is of another format or no checkpoint at all (a pickle
    of an earlier version, or anything else someone wrote there: it is only ever decoded
    as data, never run)."""
    try:
        state = decode(blob)
    except StateError as exc:
        raise StaleCheckpoint(f"a checkpoint this version cannot read ({exc})") from None
    if state.get("format") != CHECKPOINT_FORMAT or not isinstance(state.get("core"), dict):
        raise StaleCheckpoint(f"a checkpoint of format {state.get('format')!r}, not "
                              f"{CHECKPOINT_FORMAT}", _seq(state.get("core")))
    core: State = state["core"]
    return core


def _seq(core: Any) -> int:
    try:
        return int(core["seq"])
    except (TypeError, KeyError, ValueError):
        return 0


@dataclass
class Totals:
    """What a run produced, for its report: signal counts by kind, and (unless the pipeline
    runs without ``keep_totals``, as a live worker does: they would grow for ever) the
    pages, alert and incident ids."""

    signals: Counter[str] = field(default_factory=Counter)
    pages: list[Page] = field(default_factory=list)
    alerts: set[str] = field(default_factory=set)
    incidents: set[str] = field(default_factory=set)


class Pipeline:
    """Core, triage and store composed; ``source`` names the input for rejected events."""

    def __init__(self, config: Config, store: PipelineStore | None, *, source: str,
                 dry_run: bool = True, triage: Triage | None = None,
                 on_page: Callable[[Page], None] | None = None,
                 on_signal: Callable[[Signal], None] | None = None,
                 on_changes: Callable[[Changes], None] | None = None,
                 keep_totals: bool = True) -> None:
        self.config = config
        self.profiles = load_profiles(config)
        self.core = Core(config, self.profiles)
        self.store = store
        self.triage = triage or (store.load_triage(config.triage) if store is not None
                                 else Triage(config.triage))
        self.source = source
        self.dry_run = dry_run
        self.on_page = on_page
        self.on_signal = on_signal
        self.on_changes = on_changes  # what triage changed with each batch
        self.totals = Totals()
        self.keep_totals = keep_totals
        self._mutes_loaded = time.monotonic()

    def feed(self, messages: Sequence[bytes],
             checkpoint: Callable[[bytes], Checkpoint] | None = None,
             progress: Callable[[], Progress] | None = None) -> BatchResult:
        """Process a batch. With ``checkpoint``, the monitors' state after it is stored in
        the same transaction as its alerts (``checkpoint`` turns the state into one); so is
        ``progress()``, how far the input is processed after it."""
        result = self.core.process(messages)
        for _, reject in result.rejects:
            if reject.reason is Reason.MONITOR_ERROR:  # a bug: worth a person's look
                log.error("%s: a message set aside: %s", self.source, reject.detail)
        self._refresh_mutes()
        changes = self.triage.process(result.signals, result.evaluations)
        self._count(result, changes)
        if self.store is not None:  # the batch's rejects, changes, state: one transaction
            self.store.apply(changes, dry_run=self.dry_run, source=self.source,
                             rejects=result.rejects,
                             checkpoint=checkpoint(self.snapshot()) if checkpoint else None,
                             progress=progress() if progress else None)
        return result

    def checkpoint(self, checkpoint: Callable[[bytes], Checkpoint]) -> None:
        """Store the monitors' state now, between batches (nothing else changes)."""
        if self.store is not None:
            self.store.apply(Changes(), dry_run=self.dry_run,
                             checkpoint=checkpoint(self.snapshot()))

    def _refresh_mutes(self) -> None:
        """Silences and "not actionable" verdicts given in Slack, the CLI or the API reach
        a running pipeline within ``MUTES_REFRESH_SECONDS``."""
        if self.store is None or time.monotonic() - self._mutes_loaded < MUTES_REFRESH_SECONDS:
            return
        self.triage.silences, self.triage.feedback = self.store.load_mutes(
            self.config.triage)
        self._mutes_loaded = time.monotonic()

    def snapshot(self) -> bytes:
        """The monitors' state as plain data (no configuration, no reference), with its
        format, compressed; see :meth:`restore`."""
        # the core's own encoding of its state, as it is (not encoded a second time)
        return encode({"format": CHECKPOINT_FORMAT, "core": msgspec.Raw(self.core.mark())})

    def restore(self, blob: bytes) -> list[str]:
        """Resume the monitors from :meth:`snapshot` under the current configuration and
        references: returns what started afresh (a new model, a monitor whose state no
        longer fits); :class:`StaleCheckpoint` if the checkpoint cannot be read."""
        state = checkpoint_state(blob)
        try:
            return self.core.restore(state)
        except (StateError, KeyError, TypeError, ValueError) as exc:
            self.core = Core(self.config, self.profiles)  # half-restored: start afresh
            raise StaleCheckpoint(f"a checkpoint that does not fit ({exc})",
                                  _seq(state)) from None

    def _count(self, result: BatchResult, changes: Changes) -> None:
        t = self.totals
        for sig in result.signals:
            t.signals[str(sig.kind)] += 1
            if self.on_signal is not None:
                self.on_signal(sig)
        if self.keep_totals:
            t.alerts.update(changes.alerts)
            t.incidents.update(changes.incidents)
            t.pages.extend(changes.pages)
        if self.on_page is not None:
            for page in changes.pages:
                self.on_page(page)
        if self.on_changes is not None:
            self.on_changes(changes)
