"""The pure policies that used to sit in SQL: what each person's action does to an alert
(:mod:`alerts.actions`) and whom an unanswered page escalates to (:mod:`alerts.escalate`)."""

from __future__ import annotations

import pytest

from alerts.actions import Action, effect
from alerts.escalate import LAST_LEVEL, PageState, due
from alerts.model import Status

# status before -> (status after, or None for "unchanged"), for each action
TABLE = {
    Action.ACKNOWLEDGE: {Status.OPEN: Status.ACKNOWLEDGED, Status.SILENCED: Status.ACKNOWLEDGED,
                         Status.ACKNOWLEDGED: None, Status.RESOLVED: None},
    Action.RESOLVE: {Status.OPEN: Status.RESOLVED, Status.SILENCED: Status.RESOLVED,
                     Status.ACKNOWLEDGED: Status.RESOLVED, Status.RESOLVED: None},
    Action.SILENCE: {Status.OPEN: Status.SILENCED, Status.SILENCED: None,
                     Status.ACKNOWLEDGED: None, Status.RESOLVED: None},
    Action.NOT_ACTIONABLE: dict.fromkeys(Status),
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", list(Status))
def test_each_action_moves_each_status_as_the_table_says(action: Action,
                                                         status: Status) -> None:
    done = effect(status, action)
    assert done.status == TABLE[action][status]
    assert done.acknowledge == (action is Action.ACKNOWLEDGE and done.status is not None)
    assert done.resolve == (action is Action.RESOLVE and done.status is not None)
    assert done.silence == (action is Action.SILENCE)  # a silence is kept whatever the status
    assert done.not_actionable == (action is Action.NOT_ACTIONABLE)


def test_every_spelling_people_use_names_one_action_and_nothing_else_does() -> None:
    names = {"ack": Action.ACKNOWLEDGE, "acknowledge": Action.ACKNOWLEDGE,
             "resolve": Action.RESOLVE, "silence": Action.SILENCE,
             "not-actionable": Action.NOT_ACTIONABLE, "not_actionable": Action.NOT_ACTIONABLE,
             "NOT-ACTIONABLE": Action.NOT_ACTIONABLE}
    assert {name: Action.parse(name) for name in names} == names
    assert [a.command for a in Action] == ["ack", "resolve", "silence", "not-actionable"]
    for wrong in ("explode", "", "acknowledged", "not"):
        with pytest.raises(ValueError, match="unknown action"):
            Action.parse(wrong)


def page(incident: str, level: int, *, delivered_at: float | None = 0.0,
         answered: bool = False) -> PageState:
    return PageState(f"{incident}-{level}", incident, level, delivered_at, answered)


def test_the_latest_unanswered_page_escalates_once_its_sla_has_passed() -> None:
    pages = [page("a", 0), page("a", 1, delivered_at=100.0), page("b", 0, delivered_at=50.0)]
    # a's latest page is level 1, out at 100 s; b's is level 0, out at 50 s
    assert due(pages, now=949.0, ack_timeout=900.0) == []
    assert [p.page_id for p in due(pages, now=950.0, ack_timeout=900.0)] == ["b-0"]
    assert [p.page_id for p in due(pages, now=1000.0, ack_timeout=900.0)] == ["a-1", "b-0"]


def test_nothing_escalates_that_is_answered_not_out_yet_or_at_the_last_level() -> None:
    now, sla = 10_000.0, 900.0
    assert due([page("a", 0, answered=True)], now=now, ack_timeout=sla) == []
    assert due([page("a", 0, delivered_at=None)], now=now, ack_timeout=sla) == []
    assert due([page("a", LAST_LEVEL)], now=now, ack_timeout=sla) == []
    # an answer to an earlier level does not count once a later page went out unanswered
    assert [p.level for p in due([page("a", 0, answered=True), page("a", 1)], now=now,
                                 ack_timeout=sla)] == [1]
