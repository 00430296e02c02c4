"""Block Kit for pages: what broke, where, the evidence, since when, how severe and why,
a link to the alert, and the four buttons. Pure: rows in, JSON-able dicts out."""

from __future__ import annotations

from typing import Any

from alerts.actions import Action

STYLES = {Action.ACKNOWLEDGE: "primary", Action.NOT_ACTIONABLE: "danger"}  # Block Kit's


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def page_message(page: dict[str, Any], lead: dict[str, Any], console_url: str,
                 mention: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The text fallback and blocks of a page, from its ``page_log`` row and lead alert."""
    scope = [f"*model* `{lead['model_id']}`"]
    for key, label in (("model_version", "version"), ("slice", "slice"),
                       ("subject", "subject")):
        if lead.get(key):
            scope.append(f"*{label}* `{lead[key]}`")
    evidence = lead.get("evidence") or {}
    shown = [f"{k}: {_fmt(v)}" for k, v in evidence.items()
             if isinstance(v, (int, float, str)) and not isinstance(v, bool)][:8]
    why = "\n".join(f"• {f['note']}" for f in page.get("factors") or [])
    text = f":rotating_light: {page['summary']}"
    level = int(page.get("escalation_level") or 0)
    if level:
        text = f"{text} (escalated, level {level}: not acknowledged in time)"
    if mention:
        # a user id, or a special mention such as "!channel"
        text = f"<{mention}> {text}" if mention.startswith("!") else f"<@{mention}> {text}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": f"{lead['kind']} on {lead['model_id']}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": s} for s in scope]},
        {"type": "section", "text": {"type": "mrkdwn", "text":
            f"*{lead['statistic']}* {_fmt(lead['value'])} (threshold {_fmt(lead['threshold'])})"
            f", since {lead['first_seen']}, seen {lead['occurrences']}×\n"
            + ("\n".join(shown) if shown else "")}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"severity {page['severity']:.2f}: actionable because\n{why}"[:2000]}]},
        {"type": "section", "text": {"type": "mrkdwn", "text":
            f"<{console_url.rstrip('/')}/alerts/{lead['alert_id']}|Open the alert>"}},
        {"type": "actions", "block_id": f"alert:{lead['alert_id']}", "elements": [
            {"type": "button", "action_id": action.value, "value": lead["alert_id"],
             "text": {"type": "plain_text", "text": action.label},
             **({"style": STYLES[action]} if action in STYLES else {})}
            for action in Action]},
    ]
    return text, blocks


def acted_message(blocks: list[dict[str, Any]], action: Action, actor: str,
                  when: str) -> list[dict[str, Any]]:
    """The page's blocks after a person acted: the buttons give way to who did what."""
    verb = action.past
    kept = [b for b in blocks if b.get("type") != "actions"]
    return [*kept, {"type": "context", "elements": [
        {"type": "mrkdwn", "text": f":white_check_mark: {verb} by <@{actor}> at {when}"}]}]


def resolved_message(summary: str) -> tuple[str, list[dict[str, Any]]]:
    text = f":large_green_circle: resolved: {summary}"
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
