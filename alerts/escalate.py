"""escalate: re-page an incident nobody answered. Pure: the store says which pages went out
and whether anyone responded; this decides which to escalate (the notifier queues them).

A delivered page whose incident is not resolved, that nobody answered (any action on any
of its alerts) within ``ack_timeout`` seconds, is paged again one level up: level 1 wakes
the secondary on call, level 2 the whole channel, the last level.

>>> sent = PageState("p0", "i", level=0, delivered_at=0.0, answered=False)
>>> [(p.incident_id, p.level) for p in due([sent], now=900.0, ack_timeout=900.0)]
[('i', 0)]
>>> due([sent], now=899.0, ack_timeout=900.0)  # still within the SLA
[]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LAST_LEVEL = 2  # 0 the primary, 1 the secondary, 2 the channel


@dataclass(frozen=True, slots=True)
class PageState:
    """A page (not a dry run) of an unresolved incident, as the store has it."""

    page_id: str
    incident_id: str
    level: int
    delivered_at: float | None  # when Slack took it (epoch seconds); None: not out yet
    answered: bool  # someone acted on one of its alerts, or one is acknowledged or resolved


def due(pages: Iterable[PageState], *, now: float, ack_timeout: float) -> list[PageState]:
    """The pages to escalate one level up: of each incident its latest page, if it is out,
    unanswered for ``ack_timeout`` seconds, and not at the last level already."""
    latest: dict[str, PageState] = {}
    for page in pages:
        seen = latest.get(page.incident_id)
        if seen is None or page.level > seen.level:
            latest[page.incident_id] = page
    return [page for page in latest.values()
            if page.delivered_at is not None and page.level < LAST_LEVEL
            and now - page.delivered_at >= ack_timeout and not page.answered]
