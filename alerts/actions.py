"""What a person can do to an alert, and what each does: the one list of actions (Slack's
buttons, the CLI's commands and the HTTP API's paths are all made from it) and the state
machine they drive. Pure: the store applies the :class:`Effect`.

>>> Action.parse("ack"), Action.parse("not-actionable")
(<Action.ACKNOWLEDGE: 'acknowledge'>, <Action.NOT_ACTIONABLE: 'not_actionable'>)
>>> e = effect(Status.OPEN, Action.ACKNOWLEDGE); e.status, e.acknowledge
(<Status.ACKNOWLEDGED: 'acknowledged'>, True)
>>> effect(Status.RESOLVED, Action.ACKNOWLEDGE).status is None  # too late: only recorded
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from alerts.model import Status


class Action(StrEnum):
    """A person's action on an alert (the value is what the store records)."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    SILENCE = "silence"
    NOT_ACTIONABLE = "not_actionable"

    @property
    def command(self) -> str:
        """Its name on the command line and in the HTTP API's path."""
        return {"acknowledge": "ack", "not_actionable": "not-actionable"}.get(self.value,
                                                                              self.value)

    @property
    def label(self) -> str:
        """Its button's text in Slack."""
        return {"acknowledge": "Acknowledge", "resolve": "Resolve",
                "silence": "Silence 24 h", "not_actionable": "Not actionable"}[self.value]

    @property
    def past(self) -> str:
        """What it did, for a message: "acknowledged by alice"."""
        return {"acknowledge": "acknowledged", "resolve": "resolved", "silence": "silenced",
                "not_actionable": "marked not actionable"}[self.value]

    @classmethod
    def parse(cls, name: str) -> Action:
        """The action a name means (its value, its command, either spelling of the
        separator); ValueError if none."""
        wanted = name.strip().lower().replace("-", "_")
        for action in cls:
            if wanted in (action.value, action.command.replace("-", "_")):
                return action
        raise ValueError(f"unknown action {name!r} (one of: "
                         f"{', '.join(a.command for a in cls)})")


@dataclass(frozen=True, slots=True)
class Effect:
    """What an action does to an alert: its new status (None: it keeps its own), and what
    is recorded beside the acknowledgement log (which records every action)."""

    status: Status | None
    acknowledge: bool = False  # who and when, on the alert
    resolve: bool = False  # when, on the alert
    silence: bool = False  # a silence on the alert's model, kind and subject
    not_actionable: bool = False  # a verdict that lowers later alerts' severity


def effect(status: Status, action: Action) -> Effect:
    """The state machine of human actions. Acknowledging an open (or silenced) alert
    acknowledges it; resolving closes anything not closed; silencing mutes what matches
    from now on and marks an open alert silenced; "not actionable" only records the
    verdict. An action that cannot change the status (acknowledging a resolved alert, say)
    is still recorded.

    >>> effect(Status.OPEN, Action.SILENCE).status
    <Status.SILENCED: 'silenced'>
    >>> effect(Status.ACKNOWLEDGED, Action.SILENCE).status is None  # it stays acknowledged
    True
    >>> effect(Status.ACKNOWLEDGED, Action.RESOLVE).status
    <Status.RESOLVED: 'resolved'>
    """
    if action is Action.ACKNOWLEDGE:
        if status in (Status.OPEN, Status.SILENCED):
            return Effect(Status.ACKNOWLEDGED, acknowledge=True)
        return Effect(None)
    if action is Action.RESOLVE:
        return Effect(Status.RESOLVED, resolve=True) if status is not Status.RESOLVED \
            else Effect(None)
    if action is Action.SILENCE:
        return Effect(Status.SILENCED if status is Status.OPEN else None, silence=True)
    return Effect(None, not_actionable=True)


# Statuses a person set that triage, which does not know of them, must not undo when it
# updates the alert (it still says "open" or "silenced"): the store merges by this.
HUMAN_STATUSES = (Status.ACKNOWLEDGED, Status.RESOLVED)
