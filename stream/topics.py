"""Kafka topic names: every topic is keyed by ``model_id`` and the inputs are co-partitioned,
so one model's predictions, outcomes and metrics reach the same worker.

>>> Topics.for_prefix("wk").inputs
('wk.predictions', 'wk.outcomes', 'wk.metrics')
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "watchkeeper"


@dataclass(frozen=True, slots=True)
class Topics:
    predictions: str
    outcomes: str
    metrics: str
    signals: str
    deadletter: str
    control: str

    @classmethod
    def for_prefix(cls, prefix: str = PREFIX) -> Topics:
        return cls(*(f"{prefix}.{name}" for name in
                     ("predictions", "outcomes", "metrics", "signals", "deadletter", "control")))

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.predictions, self.outcomes, self.metrics)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.inputs, self.signals, self.deadletter, self.control)

    def for_type(self, event_type: str) -> str:
        return {"prediction": self.predictions, "outcome": self.outcomes,
                "metric": self.metrics}[event_type]


DEFAULT = Topics.for_prefix()
