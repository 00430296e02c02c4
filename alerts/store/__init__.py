"""Where triage's results are kept. The pipeline only knows this interface; the
SQLAlchemy implementation (PostgreSQL, SQLite) is :class:`alerts.store.sql.SqlStore`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alerts.model import Silence
from alerts.triage import Changes, Triage
from config.file import TriagePolicy
from stream.events import Reject


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A live worker's state for one input partition, and the last offset per input topic
    that state includes (events up to there are in it; redelivered ones are skipped)."""

    app_id: str
    partition: int
    state: bytes
    offsets: dict[str, int]
    events: int


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a live worker's partition has been processed and written (its alerts and
    pages are in the store up to here), checkpointed or not: for operators and latency
    measurements. A restart resumes from the :class:`Checkpoint`, which may be older."""

    app_id: str
    partition: int
    offsets: dict[str, int]
    events: int


class Store(Protocol):
    def load_triage(self, policy: TriagePolicy) -> Triage:
        """A triage pipeline resumed from the stored state."""
        ...

    def apply(self, changes: Changes, *, dry_run: bool, checkpoint: Checkpoint | None = None,
              progress: Progress | None = None) -> None:
        """Persist one call's changes atomically and idempotently; queue pages for delivery
        in the outbox unless ``dry_run``; with ``checkpoint`` and ``progress``, in the same
        transaction."""
        ...

    def load_mutes(self, policy: TriagePolicy) -> tuple[list[Silence],
                                                        Counter[tuple[str, str, str]]]:
        """Silences and "not actionable" counts, as people have set them so far."""
        ...

    def load_checkpoint(self, app_id: str, partition: int) -> Checkpoint | None:
        """The last checkpoint of a live worker's partition, if any."""
        ...

    def load_progress(self, app_id: str, partition: int) -> Progress | None:
        """How far a live worker's partition was processed and written, if at all."""
        ...

    def record_rejects(self, source: str, rejects: Sequence[tuple[int, Reject]]) -> None:
        """Keep rejected events (idempotent per source and index)."""
        ...

    def seq_base(self, source: str) -> int:
        """The first event index of a source: above all recorded, stable per source."""
        ...

    def close(self) -> None: ...
