"""The notifier: delivers the outbox to Slack (``chat.postMessage``; ``chat.update`` when a
paged incident resolves).

Retries a call on 429 (waiting as ``Retry-After`` says), on 5xx and on timeouts or lost
connections, with exponential backoff; every attempt is counted on its outbox row with the
last error. A message is marked sent in the same transaction that records where Slack put
it, so a restart never posts what was already posted (the one window left is a crash
between Slack's answer and that commit). A timed-out call may nevertheless have landed:
Slack has no idempotency key, so retrying a timeout can post a page twice; we take that
over losing a page.
"""

from __future__ import annotations

import logging
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import case, func, insert, select, update

from alerts.fingerprint import stable_id
from alerts.store.sql import SqlStore
from alerts.store.tables import (
    AcknowledgementRow,
    AlertRow,
    DeliveryAttemptRow,
    IncidentRow,
    OutboxRow,
    PageRow,
    StateRow,
)
from config.file import OnCallSpec
from config.settings import SlackSettings
from services.slack_blocks import page_message, resolved_message

log = logging.getLogger("watchkeeper.notifier")
DIGEST_KEY = "digest"
DIGEST_LINES = 50  # findings per digest message
GIVE_UP_ATTEMPTS = 50  # a message that failed this often is left for a person (last_error)


class DeliveryError(Exception):
    """A call that failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, wait: float = 0.0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    attempts: int = 0


def slack_client(settings: SlackSettings, timeout: int = 10) -> WebClient:
    # retries are ours (counted and recorded), so the SDK's own handlers are off
    return WebClient(token=settings.bot_token, base_url=settings.api_url, timeout=timeout,
                     retry_handlers=[])


class Notifier:
    def __init__(self, store: SqlStore, client: WebClient, settings: SlackSettings, *,
                 oncall: OnCallSpec | None = None, max_attempts: int = 5,
                 base_delay: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.oncall = oncall
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.sleep = sleep
        self.clock = clock

    def mention(self, level: int) -> str | None:
        """Who a page of this escalation level wakes: the primary on call, then the
        secondary, then everyone in the channel."""
        if self.oncall is None:
            return "!channel" if level >= 2 else None
        shift = self.oncall.on_call(datetime.fromtimestamp(self.clock(), tz=UTC))
        return (shift.primary, shift.secondary, "!channel")[min(level, 2)]

    def send_digest(self, every_seconds: float) -> int:
        """Post the digest when it is due: every incident routed to the digest, not paged
        and not digested yet. Each is marked digested only once Slack has taken the
        message that carries it, so none is lost (late data included: the window is not a
        time range). Returns how many went out (0 when not due or empty)."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        engine = self.store.engine
        with engine.connect() as conn:
            state = conn.execute(select(StateRow.value).where(StateRow.key == DIGEST_KEY)
                                 ).scalar_one_or_none()
            last = datetime.fromisoformat(state["at"]) if state else None
            if last is not None and (now - last).total_seconds() < every_seconds:
                return 0
            incidents = conn.execute(
                select(IncidentRow.incident_id, IncidentRow.model_id, IncidentRow.summary,
                       IncidentRow.severity)
                .where(IncidentRow.route == "digest", IncidentRow.paged_at.is_(None),
                       IncidentRow.digested_at.is_(None))
                .order_by(IncidentRow.model_id, IncidentRow.opened_at)).all()
        sent = 0
        for start in range(0, len(incidents), DIGEST_LINES):
            chunk = incidents[start:start + DIGEST_LINES]
            lines = [f"• `{i.model_id}` {i.summary} (severity {i.severity:.2f})"
                     for i in chunk]
            text = (f":newspaper: Watchkeeper digest: {len(incidents)} finding(s) that did "
                    "not need a page" + (f" ({start + 1}-{start + len(chunk)})"
                                          if len(incidents) > DIGEST_LINES else "")
                    + "\n" + "\n".join(lines))
            try:
                self._call(self.client.chat_postMessage, channel=self.settings.channel,
                           text=text)
            except DeliveryError as exc:
                log.warning("digest not sent (will retry): %s", exc)
                return sent
            with engine.begin() as conn:
                conn.execute(update(IncidentRow).where(IncidentRow.incident_id.in_(
                    [i.incident_id for i in chunk])).values(digested_at=now))
            sent += len(chunk)
        with engine.begin() as conn:
            self.store.insert_rows(conn, StateRow,
                                   [{"key": DIGEST_KEY, "value": {"at": now.isoformat()}}],
                                   ["key"], True)
        return sent

    def escalate(self) -> int:
        """Re-page incidents whose latest page nobody acknowledged within the SLA:
        level 1 to the secondary, level 2 to the channel. Returns how many were queued."""
        if self.oncall is None:
            return 0
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        timeout = self.oncall.ack_timeout_seconds
        queued = 0
        with self.store.engine.begin() as conn:
            pages = conn.execute(
                select(PageRow).join(IncidentRow,
                                     IncidentRow.incident_id == PageRow.incident_id)
                .where(PageRow.dry_run.is_(False), IncidentRow.status != "resolved")
            ).mappings().all()
            latest: dict[str, Any] = {}
            for page in pages:
                seen = latest.get(page["incident_id"])
                if seen is None or page["escalation_level"] > seen["escalation_level"]:
                    latest[page["incident_id"]] = page
            for page in latest.values():
                if not page["delivered"] or page["escalation_level"] >= 2:
                    continue  # the last level, or its page is not out yet
                delivered = page["delivered_at"]
                if delivered.tzinfo is None:
                    delivered = delivered.replace(tzinfo=UTC)
                if (now - delivered).total_seconds() < timeout:
                    continue
                alert_ids = list(page["alert_ids"]) or [page["alert_id"]]
                answered = conn.execute(select(func.count()).select_from(AcknowledgementRow)
                                        .where(AcknowledgementRow.alert_id.in_(alert_ids))
                                        ).scalar_one()
                statuses = conn.execute(select(AlertRow.status).where(
                    AlertRow.alert_id.in_(alert_ids))).scalars().all()
                if answered or any(st in ("acknowledged", "resolved") for st in statuses):
                    continue  # a person responded (any button): no one else is woken
                level = page["escalation_level"] + 1
                new = {k: v for k, v in page.items()
                       if k not in ("delivered_at", "slack_channel", "slack_ts")}
                new.update(page_id=stable_id("page", page["incident_id"], level),
                           escalation_level=level, paged_at=now, delivered=False)
                self.store.insert_rows(conn, PageRow, [new], ["page_id"], False)
                self.store.insert_rows(conn, OutboxRow, [{
                    "message_id": new["page_id"], "kind": "page", "page_id": new["page_id"],
                    "incident_id": page["incident_id"], "payload": {"escalation_level": level},
                    "created_at": now, "sent_at": None, "attempts": 0, "last_error": None}],
                    ["message_id"], False)
                queued += 1
                log.warning("incident %s: not acknowledged in %.0f s, escalated to level %d",
                            page["incident_id"], timeout, level)
        return queued

    def deliver_pending(self) -> Report:
        """Deliver every unsent outbox message, oldest first."""
        report = Report()
        with self.store.engine.connect() as conn:
            ids = conn.execute(select(OutboxRow.message_id).where(
                OutboxRow.sent_at.is_(None), OutboxRow.attempts < GIVE_UP_ATTEMPTS)
                               .order_by(case((OutboxRow.kind == "page", 0), else_=1),
                                         OutboxRow.created_at, OutboxRow.message_id)
                               ).scalars().all()
        for message_id in ids:
            outcome = self._deliver_one(message_id, report)
            if outcome is True:
                report.sent += 1
            elif outcome is False:
                report.failed += 1
        return report

    def _deliver_one(self, message_id: str, report: Report) -> bool | None:
        """True when delivered, False when it failed, None when it must wait (a thread
        reply whose page is not in Slack yet)."""
        engine = self.store.engine
        with engine.connect() as conn:
            msg = conn.execute(select(OutboxRow).where(OutboxRow.message_id == message_id)
                               ).mappings().one()
            if msg["kind"] == "thread" and self._posted_page(conn, msg["incident_id"]) is None:
                return None
            if msg["kind"] == "resolve" and conn.execute(
                    select(func.count()).select_from(PageRow).where(
                        PageRow.incident_id == msg["incident_id"],
                        PageRow.dry_run.is_(False), PageRow.delivered.is_(False))
            ).scalar_one():
                return None  # a page of this incident is still to go out: update it after
        for attempt in range(self.max_attempts):
            report.attempts += 1
            try:
                try:
                    where = self._send(dict(msg))
                except DeliveryError:
                    raise
                except Exception as exc:  # a bad row or payload must not stop the others
                    raise DeliveryError(f"cannot deliver: {type(exc).__name__}: {exc}",
                                        retryable=False) from exc
            except DeliveryError as exc:
                with engine.begin() as conn:
                    conn.execute(update(OutboxRow).where(OutboxRow.message_id == message_id)
                                 .values(attempts=OutboxRow.attempts + 1,
                                         last_error=str(exc)[:1000]))
                    conn.execute(insert(DeliveryAttemptRow).values(
                        message_id=message_id, ok=False, error=str(exc)[:1000],
                        attempted_at=datetime.fromtimestamp(self.clock(), tz=UTC)))
                log.warning("outbox %s: attempt %d failed: %s", message_id, attempt + 1, exc)
                if not exc.retryable:
                    return False
                if attempt + 1 < self.max_attempts:
                    self.sleep(exc.wait or self.base_delay * 2 ** attempt)
                continue
            now = datetime.fromtimestamp(self.clock(), tz=UTC)
            with engine.begin() as conn:
                conn.execute(update(OutboxRow).where(OutboxRow.message_id == message_id)
                             .values(attempts=OutboxRow.attempts + 1, sent_at=now,
                                     last_error=None))
                conn.execute(insert(DeliveryAttemptRow).values(
                    message_id=message_id, ok=True, error=None, attempted_at=now))
                if msg["kind"] == "page" and where is not None:
                    conn.execute(update(PageRow).where(PageRow.page_id == msg["page_id"])
                                 .values(delivered=True, delivered_at=now,
                                         slack_channel=where[0], slack_ts=where[1]))
            return True
        return False

    def _send(self, msg: dict[str, Any]) -> tuple[str, str] | None:
        with self.store.engine.connect() as conn:
            if msg["kind"] == "page":
                page = conn.execute(select(PageRow).where(PageRow.page_id == msg["page_id"])
                                    ).mappings().one()
                lead = conn.execute(select(AlertRow).where(AlertRow.alert_id == page["alert_id"])
                                    ).mappings().one()
                text, blocks = page_message(dict(page), dict(lead), self.settings.console_url,
                                            mention=self.mention(page["escalation_level"]))
                resp = self._call(self.client.chat_postMessage,
                                  channel=page["channel"] or self.settings.channel,
                                  text=text, blocks=blocks)
                return str(resp["channel"]), str(resp["ts"])
            if msg["kind"] == "thread":
                root = self._posted_page(conn, msg["incident_id"])
                assert root is not None
                payload = msg["payload"]
                lines = "\n".join(f"• {line}" for line in payload["summaries"])
                self._call(self.client.chat_postMessage, channel=root["slack_channel"],
                           thread_ts=root["slack_ts"],
                           text=f":repeat: still firing ({payload['alerts']} alert(s)):\n"
                                f"{lines}")
                return None
            if msg["kind"] == "resolve":
                posted = conn.execute(select(PageRow).where(
                    PageRow.incident_id == msg["incident_id"], PageRow.slack_ts.is_not(None))
                ).mappings().all()
                for page in posted:  # the page and its escalations
                    text, blocks = resolved_message(page["summary"])
                    self._call(self.client.chat_update, channel=page["slack_channel"],
                               ts=page["slack_ts"], text=text, blocks=blocks)
                return None
        raise DeliveryError(f"unknown outbox kind {msg['kind']!r}", retryable=False)

    @staticmethod
    def _posted_page(conn: Any, incident_id: str) -> Any:
        """The incident's first page that Slack has (its thread is the incident's)."""
        return conn.execute(select(PageRow).where(
            PageRow.incident_id == incident_id, PageRow.slack_ts.is_not(None))
            .order_by(PageRow.escalation_level)).mappings().first()

    @staticmethod
    def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                wait = float(exc.response.headers.get("Retry-After", "1") or 1)
                raise DeliveryError("rate limited (429)", retryable=True, wait=wait) from None
            if status >= 500:
                raise DeliveryError(f"Slack error {status}", retryable=True) from None
            raise DeliveryError(f"Slack refused: {exc.response.get('error')}",
                                retryable=False) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise DeliveryError(f"no answer from Slack: {exc}", retryable=True) from None


def run_notifier(store: SqlStore, settings: SlackSettings, *, once: bool,
                 interval: float = 5.0, oncall: OnCallSpec | None = None,
                 digest_every: float = 24 * 3600) -> Report:
    """Deliver pending messages, escalations and the digest when due; once, or every
    ``interval`` seconds."""
    notifier = Notifier(store, slack_client(settings), settings, oncall=oncall)
    total = Report()
    while True:
        notifier.send_digest(digest_every)
        report = notifier.deliver_pending()
        if notifier.escalate():
            again = notifier.deliver_pending()
            report.sent += again.sent
            report.failed += again.failed
            report.attempts += again.attempts
        total.sent += report.sent
        total.failed += report.failed
        total.attempts += report.attempts
        if once:
            return total
        time.sleep(interval)
